package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"
)

// Config is how to reach the registry.
type Config struct {
	// URL is the registry's base URL (for Apicurio Registry, its
	// .../apis/ccompat/v7).
	URL string
	// Username and Password: HTTP basic authentication; Token: a bearer
	// token. At most one of them.
	Username, Password, Token string
	// HTTPClient carries the calls (TLS settings, timeouts); nil: the
	// default client.
	HTTPClient *http.Client
	// UserAgent names tvm2kafka in the calls.
	UserAgent string
}

// Client registers schemas.
type Client struct {
	cl  *sr.Client
	url string
}

// New returns a client of the registry at cfg.URL.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("registry: no URL")
	}
	opts := []sr.ClientOpt{sr.URLs(strings.TrimRight(cfg.URL, "/"))}
	if cfg.HTTPClient != nil {
		opts = append(opts, sr.HTTPClient(cfg.HTTPClient))
	}
	if cfg.UserAgent != "" {
		opts = append(opts, sr.UserAgent(cfg.UserAgent))
	}
	switch {
	case cfg.Token != "":
		opts = append(opts, sr.BearerToken(cfg.Token))
	case cfg.Username != "":
		opts = append(opts, sr.BasicAuth(cfg.Username, cfg.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return &Client{cl: cl, url: cfg.URL}, nil
}

// Kind is the type of a schema.
type Kind int

// The kinds of schema.
const (
	Avro Kind = iota
	JSONSchema
)

// Subject is the subject of a topic's values (TopicNameStrategy).
func Subject(topic string) string { return topic + "-value" }

// Registered is a schema the registry holds.
type Registered struct {
	Subject string
	ID      int
	Version int
	// SetCompatibility is set when the subject had no compatibility level
	// of its own and was set to BACKWARD.
	SetCompatibility bool
}

// Register registers schema under subject (or finds it registered) and
// returns its id. A subject without a compatibility level of its own is
// set to BACKWARD first, so the registry checks this schema against the
// subject's earlier ones; an incompatible schema is an error holding the
// registry's answer.
func (c *Client) Register(ctx context.Context, subject string, kind Kind, schema string) (Registered, error) {
	out := Registered{Subject: subject}
	res := c.cl.Compatibility(ctx, subject)
	if err := res[0].Err; err != nil {
		var re *sr.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
			return out, fmt.Errorf("registry %s: reading the compatibility of %s: %w", c.url, subject, err)
		}
		set := c.cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatBackward}, subject)
		if err := set[0].Err; err != nil {
			return out, fmt.Errorf("registry %s: setting the compatibility of %s to BACKWARD: %w", c.url, subject, err)
		}
		out.SetCompatibility = true
	}
	t := sr.TypeAvro
	if kind == JSONSchema {
		t = sr.TypeJSON
	}
	ss, err := c.cl.CreateSchema(ctx, subject, sr.Schema{Schema: schema, Type: t})
	if err != nil {
		return out, fmt.Errorf("registry %s: registering the schema of %s: %w", c.url, subject, err)
	}
	out.ID, out.Version = ss.ID, ss.Version
	return out, nil
}
