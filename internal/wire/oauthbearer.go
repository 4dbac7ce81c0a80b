package wire

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// OAuthToken yields a bearer token for the brokers and the time it
// expires (Config.OAuthToken, SASL mechanism OAUTHBEARER). It is
// called for every new connection and is expected to cache: azidentity
// credentials do, and refresh a token five minutes before it expires.
type OAuthToken func(ctx context.Context) (token string, expiresOn time.Time, err error)

// oauthBearer is the SASL OAUTHBEARER mechanism (RFC 7628) for kafka-go,
// which has none: the client's first message carries the token; an empty
// answer means success, a JSON error document means the broker refused
// the token.
type oauthBearer struct {
	token OAuthToken
	scope string // for error messages: the scope as configured
	// scopeName names the setting of the scope in error messages.
	scopeName string
}

func (m *oauthBearer) Name() string { return SASLOAuthBearer }

func (m *oauthBearer) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	tok, _, err := m.token(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: OAUTHBEARER: no token for scope %s: %w", m.scope, err)
	}
	// GS2 header "n,,", then the auth key-value and the closing ^A^A.
	ir := []byte("n,,\x01auth=Bearer " + tok + "\x01\x01")
	return &oauthSession{token: tok, scope: m.scope, scopeName: m.scopeName}, ir, nil
}

type oauthSession struct {
	token, scope, scopeName string
}

func (s *oauthSession) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	if len(challenge) == 0 {
		return true, nil, nil
	}
	// The broker answered an error document (RFC 7628 §3.2.2) instead of
	// success. A client would send ^A to learn nothing more; the
	// connection is dropped instead, with what the token says.
	var doc struct {
		Status string `json:"status"`
		Scope  string `json:"scope"`
	}
	_ = json.Unmarshal(challenge, &doc)
	if doc.Status == "" {
		doc.Status = "no status"
	}
	aud, iss := tokenClaims(s.token)
	return false, nil, fmt.Errorf("%w: the brokers refused the OAUTHBEARER token (%s): it was issued for audience %s by %s for the scope %s; check %s (its default is https://<host of the first broker>/.default) and the audience and issuer the brokers expect",
		kafka.SASLAuthenticationFailed, doc.Status, orUnknown(aud), orUnknown(iss), s.scope, s.scopeName)
}

// tokenClaims reads the audience and issuer of a JWT without verifying
// it (they are not secret; the token is never printed).
func tokenClaims(tok string) (aud, iss string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", ""
	}
	var c struct {
		Aud any    `json:"aud"`
		Iss string `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return "", ""
	}
	switch a := c.Aud.(type) {
	case string:
		aud = a
	case []any:
		var s []string
		for _, x := range a {
			s = append(s, fmt.Sprint(x))
		}
		aud = strings.Join(s, ",")
	}
	return aud, c.Iss
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown: not a JWT)"
	}
	return `"` + s + `"`
}

// errConnRetired is the write error of a connection whose token is about
// to expire. It is temporary (net.Error), so kafka-go retries the request
// on a new connection at once, as for a connection the broker closed.
var errConnRetired error = retiredError{}

type retiredError struct{}

func (retiredError) Error() string {
	return "kafka: connection retired before its OAUTHBEARER token expires"
}
func (retiredError) Timeout() bool   { return false }
func (retiredError) Temporary() bool { return true }
func (retiredError) Unwrap() error   { return syscall.EPIPE }

// retiringConn is a broker connection that stops taking requests shortly
// before the token it authenticated with expires: its first write after
// that fails before a byte is sent, so kafka-go drops the connection and
// dials a new one, which authenticates with a fresh token. kafka-go cannot
// re-authenticate a connection in place (KIP-368), and brokers that
// enforce token lifetimes (Azure Event Hubs, Kafka with
// connections.max.reauth.ms) close sessions whose token expired.
type retiringConn struct {
	net.Conn
	retireAt time.Time
	now      func() time.Time
}

func (c *retiringConn) Write(p []byte) (int, error) {
	if !c.now().Before(c.retireAt) {
		return 0, errConnRetired
	}
	return c.Conn.Write(p)
}

// retireTime is when a connection authenticated at now with a token
// expiring at exp stops taking requests: a minute before exp, or half-way
// for a token that lives less than two minutes.
func retireTime(now, exp time.Time) time.Time {
	left := exp.Sub(now)
	margin := min(time.Minute, left/2)
	return exp.Add(-margin)
}

// oauthDialer wraps dial: every connection first asks for the token (so
// that it knows the token's expiry; the SASL exchange right after gets the
// same cached token) and retires before it expires.
func oauthDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error), token OAuthToken, scope string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, exp, err := token(ctx)
		if err != nil {
			return nil, fmt.Errorf("kafka: OAUTHBEARER: no token for scope %s: %w", scope, err)
		}
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &retiringConn{Conn: conn, retireAt: retireTime(time.Now(), exp), now: time.Now}, nil
	}
}
