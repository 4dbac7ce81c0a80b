package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/names"
	"github.com/tvm2kafka/tvm2kafka/internal/redact"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// ErrEmptyExport reports an export answer with no part files. It is an
// error, not a snapshot of zero devices: a consumer that replaces its
// device table on snapshot-end must never be told "zero devices" by a
// Defender glitch.
var ErrEmptyExport = errors.New("the export API answered no export files")

// ErrNoSuchHost reports a host name that does not resolve (DNS NXDOMAIN):
// a typo in a setting, not a transient failure, so it is never retried.
var ErrNoSuchHost = errors.New("no such host")

// NoSuchHost reports whether err comes from a host name that does not
// exist (DNS: no such host) and returns that name.
// Libraries that flatten errors into text (MSAL) are read by the text
// Go's resolver writes: "lookup HOST[ on SERVER]: no such host".
func NoSuchHost(err error) (string, bool) {
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return de.Name, true
	}
	if m := reNoSuchHost.FindStringSubmatch(err.Error()); m != nil {
		return m[1], true
	}
	return "", false
}

var reNoSuchHost = regexp.MustCompile(`lookup ([^\s:]+)(?: on [^\s]+)?: no such host`)

// ExportConfig configures an ExportClient.
type ExportConfig struct {
	// BaseURL is the API's base URL, e.g. https://api.securitycenter.microsoft.com.
	BaseURL string
	// Export is the export name; "" = schema.ExportInfoGathering, called
	// as GET {BaseURL}/api/machines/{Export}.
	Export string
	// SASValidHours is sent as sasValidHours when not 0 (1–24).
	SASValidHours int
	Tokens        TokenSource
	// HTTPClient nil = a client on a clone of http.DefaultTransport
	// (honours HTTPS_PROXY / NO_PROXY).
	HTTPClient *http.Client
	// Limiter nil = NewRateLimiter(Clock, ExportLimits()...).
	Limiter *RateLimiter
	// Clock nil = RealClock().
	Clock Clock
	// MaxElapsed bounds the retries of one Manifest call; 0 = 5 minutes.
	MaxElapsed time.Duration
	Logger     zerolog.Logger
	// Names names the settings behind the fields ("source.BaseURL", …)
	// in errors and hints; nil names the fields.
	Names names.Func
}

// ExportClient fetches export manifests.
type ExportClient struct {
	cfg      ExportConfig
	endpoint string
	client   *http.Client
	limiter  *RateLimiter
	clock    Clock
	calls    atomic.Int64
}

// APIError is a permanent failure of the export API (or an unusable answer).
type APIError struct {
	Status  int    // HTTP status; 200 for a malformed answer
	Code    string // Defender's error code, if any
	Message string // Defender's error message, or what is wrong with the answer
	hint    string
}

func (e *APIError) Error() string {
	var b strings.Builder
	switch e.Status {
	case http.StatusUnauthorized:
		b.WriteString("Defender API rejected the access token (401 Unauthorized")
	case http.StatusForbidden:
		b.WriteString("Defender API denied access (403 Forbidden")
	case http.StatusNotFound:
		b.WriteString("Defender API has no such export (404 Not Found")
	case http.StatusOK:
		b.WriteString("Defender API answered a malformed export manifest (")
	default:
		fmt.Fprintf(&b, "Defender API answered HTTP %d (%s", e.Status, http.StatusText(e.Status))
	}
	if e.Status != http.StatusOK {
		if e.Code != "" || e.Message != "" {
			b.WriteString("; ")
		}
	}
	if e.Code != "" {
		b.WriteString(e.Code)
		if e.Message != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Message)
	b.WriteString(")")
	if e.hint != "" {
		b.WriteString(": ")
		b.WriteString(e.hint)
	}
	return b.String()
}

// NewExportClient validates cfg and returns a client.
func NewExportClient(cfg ExportConfig) (*ExportClient, error) {
	if cfg.Export == "" {
		cfg.Export = schema.ExportInfoGathering
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s %q: not an absolute http(s) URL", cfg.Names.Of("source.BaseURL"), cfg.BaseURL)
	}
	if cfg.SASValidHours < 0 || cfg.SASValidHours > 24 {
		return nil, fmt.Errorf("%s %d: must be between 1 and 24", cfg.Names.Of("source.SASValidHours"), cfg.SASValidHours)
	}
	if cfg.Tokens == nil {
		return nil, errors.New("export client: no token source")
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock()
	}
	if cfg.MaxElapsed <= 0 {
		cfg.MaxElapsed = 5 * time.Minute
	}
	c := &ExportClient{cfg: cfg, clock: cfg.Clock, limiter: cfg.Limiter, client: cfg.HTTPClient}
	if c.limiter == nil {
		c.limiter = NewRateLimiter(cfg.Clock, ExportLimits()...)
	}
	if c.client == nil {
		c.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	c.endpoint = strings.TrimRight(cfg.BaseURL, "/") + "/api/machines/" + cfg.Export
	if cfg.SASValidHours > 0 {
		c.endpoint += "?sasValidHours=" + strconv.Itoa(cfg.SASValidHours)
	}
	return c, nil
}

// Calls returns the number of HTTP requests made to the export API,
// every retry included.
func (c *ExportClient) Calls() int { return int(c.calls.Load()) }

// transientError is a failure worth retrying, with the server's
// Retry-After when it gave one.
type transientError struct {
	err        error
	retryAfter time.Duration
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// pausedClock is a clock that leaves out paused time (rate limiter waits).
type pausedClock struct {
	Clock
	paused time.Duration
}

func (p *pausedClock) pause(d time.Duration) { p.paused += d }
func (p *pausedClock) Now() time.Time        { return p.Clock.Now().Add(-p.paused) }

// Manifest fetches the export's part URLs. Every attempt waits for the
// rate limiter; 429 (honouring Retry-After), 5xx and network errors are
// retried with exponential backoff within MaxElapsed; 401, 403, 404 and
// malformed answers fail at once with an *APIError; an empty exportFiles
// fails with ErrEmptyExport.
func (c *ExportClient) Manifest(ctx context.Context) (schema.Manifest, error) {
	// MaxElapsed bounds the time spent failing, not the time spent
	// waiting for the rate limiter: the backoff's clock excludes it.
	bc := &pausedClock{Clock: c.clock}
	bo := &atLeast{BackOff: newBackoff(bc, time.Second, 30*time.Second, c.cfg.MaxElapsed)}
	var (
		m        schema.Manifest
		attempts int
		last     *transientError
	)
	err := retry(ctx, c.clock, bo, func() error {
		attempts++
		var err error
		m, err = c.once(ctx, bc)
		if err == nil {
			return nil
		}
		var te *transientError
		if !errors.As(err, &te) || ctx.Err() != nil {
			return backoff.Permanent(err)
		}
		bo.hint, last = te.retryAfter, te
		return err
	}, func(err error, wait time.Duration) {
		c.cfg.Logger.Warn().Str("export", c.cfg.Export).Int("attempt", attempts).Dur("retry_in", wait).
			Str("error", err.Error()).Msg("export API call failed, retrying")
	})
	switch {
	case err == nil:
		return m, nil
	case last != nil && errors.Is(err, last):
		return schema.Manifest{}, fmt.Errorf("export %s: giving up after %d attempts: %w", c.cfg.Export, attempts, last.err)
	}
	return schema.Manifest{}, err
}

func (c *ExportClient) once(ctx context.Context, bc *pausedClock) (schema.Manifest, error) {
	before := c.clock.Now()
	// The call counts from when its answer is in (done, deferred): it
	// reaches Defender after the token and the connection, never later.
	done, err := c.limiter.Acquire(ctx)
	defer done()
	if err != nil {
		return schema.Manifest{}, err
	}
	bc.pause(c.clock.Now().Sub(before))
	tok, err := c.cfg.Tokens.Token(ctx)
	if err != nil {
		return schema.Manifest{}, err
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, c.endpoint, nil)
	if err != nil {
		return schema.Manifest{}, fmt.Errorf("export API request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tvm2kafka")
	c.calls.Add(1)
	start := c.clock.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return schema.Manifest{}, ctx.Err()
		}
		if host, ok := NoSuchHost(err); ok {
			return schema.Manifest{}, fmt.Errorf("%s %s: the host %s does not exist (DNS: no such host): %w",
				c.cfg.Names.Of("source.BaseURL"), strings.TrimRight(c.cfg.BaseURL, "/"), host, ErrNoSuchHost)
		}
		return schema.Manifest{}, &transientError{err: fmt.Errorf("export API request failed: %w", stripURLQuery(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return schema.Manifest{}, &transientError{err: fmt.Errorf("export API: reading the answer: %w", err)}
	}
	c.cfg.Logger.Debug().Str("export", c.cfg.Export).Int("status", resp.StatusCode).
		Dur("took", c.clock.Now().Sub(start)).Msg("export API call")
	switch {
	case resp.StatusCode == http.StatusOK:
		return c.parse(body)
	case resp.StatusCode == http.StatusTooManyRequests:
		ra := retryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
		return schema.Manifest{}, &transientError{err: c.apiError(resp.StatusCode, body), retryAfter: ra}
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return schema.Manifest{}, &transientError{err: c.apiError(resp.StatusCode, body)}
	default:
		return schema.Manifest{}, c.apiError(resp.StatusCode, body)
	}
}

// retryAfter parses a Retry-After header (delay in seconds or HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func (c *ExportClient) apiError(status int, body []byte) *APIError {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &APIError{Status: status}
	if json.Unmarshal(body, &eb) == nil {
		e.Code, e.Message = eb.Error.Code, truncate(eb.Error.Message, 300)
	}
	switch status {
	case http.StatusUnauthorized:
		e.hint = "check " + c.cfg.Names.Of("source.TenantID") + " (the tenant of the Defender subscription), the application and " + c.cfg.Names.Of("source.Scope") + " (default " + DefaultTokenScope + ")"
	case http.StatusForbidden:
		e.hint = c.cfg.Export + " needs the API permission " + permissionOf(c.cfg.Export) + " (WindowsDefenderATP, type Application) with admin consent"
	case http.StatusNotFound:
		e.hint = c.cfg.Export + " is not offered here: the tenant may lack the Defender Vulnerability Management add-on it needs, or check " + c.cfg.Names.Of("source.BaseURL") + " (" + strings.TrimRight(c.cfg.BaseURL, "/") + "/api/machines/" + c.cfg.Export + " does not exist)"
	}
	return e
}

// permissionOf is the application permission an export requires.
func permissionOf(export string) string {
	if e, ok := schema.LookupExport(export); ok {
		return e.Permission
	}
	return "Vulnerability.Read.All"
}

func (c *ExportClient) parse(body []byte) (schema.Manifest, error) {
	var ans struct {
		ExportFiles   *[]string `json:"exportFiles"`
		GeneratedTime *string   `json:"generatedTime"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return schema.Manifest{}, &APIError{Status: http.StatusOK, Message: "not a JSON object with exportFiles and generatedTime: " + redact.String(err.Error())}
	}
	switch {
	case ans.ExportFiles == nil:
		return schema.Manifest{}, &APIError{Status: http.StatusOK, Message: "no exportFiles"}
	case ans.GeneratedTime == nil || *ans.GeneratedTime == "":
		return schema.Manifest{}, &APIError{Status: http.StatusOK, Message: "no generatedTime"}
	case len(*ans.ExportFiles) == 0:
		return schema.Manifest{}, fmt.Errorf("export %s generated %s: %w", c.cfg.Export, *ans.GeneratedTime, ErrEmptyExport)
	}
	m, err := schema.NewManifest(c.cfg.Export, *ans.GeneratedTime, *ans.ExportFiles)
	if err != nil {
		return schema.Manifest{}, &APIError{Status: http.StatusOK, Message: err.Error()}
	}
	c.cfg.Logger.Info().Str("export", c.cfg.Export).Str("generated_time", m.GeneratedTime).
		Int("parts", len(m.Parts)).Msg("export manifest")
	return m, nil
}
