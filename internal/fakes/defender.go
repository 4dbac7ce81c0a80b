package fakes

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// DefenderConfig configures a fake Defender API.
type DefenderConfig struct {
	// Manifest is called on every successful call of InfoGatheringExport
	// and returns the SAS URLs and generatedTime to answer. Nil answers an
	// empty export.
	Manifest func() (urls []string, generatedTime string)
	// ManifestOf, when set, answers every export of schema.Exports (its
	// canonical name is passed): the URLs and generatedTime, or a status
	// of 403 (the app lacks the export's permission) or 404 (the tenant
	// has no licence for it) to answer instead; 0 is 200. It replaces
	// Manifest.
	ManifestOf func(export string) (urls []string, generatedTime string, status int)
	// Authorize decides whether a bearer token is accepted (401 otherwise).
	// Nil accepts any non-empty token.
	Authorize func(bearer string) bool
	// TLS serves HTTPS with a self-signed certificate trusted by Client().
	TLS bool
	// Now stamps Calls(); nil = time.Now. Tests with a fake clock pass its Now.
	Now func() time.Time
}

// Response is one scripted answer of the fake Defender API.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Defender is a fake Defender API serving GET /api/machines/<export> for
// the exports of schema.Exports (InfoGatheringExport only, unless
// DefenderConfig.ManifestOf is set; path matched case-insensitively) with
// Defender's answer shape:
// {"@odata.context": ..., "exportFiles": [...], "generatedTime": ...}.
// Unauthorized calls get 401 with Defender's JSON error body.
type Defender struct {
	cfg    DefenderConfig
	srv    *httptest.Server
	client *http.Client

	mu        sync.Mutex
	calls     []time.Time
	callsOf   map[string]int
	lastQuery url.Values
	queue     []Response
}

// NewDefender starts a fake Defender API on 127.0.0.1.
func NewDefender(cfg DefenderConfig) *Defender {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Defender{cfg: cfg}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	if cfg.TLS {
		cert, pool := selfSigned()
		d.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		d.srv.StartTLS()
		d.client = routedClient(d.srv.Listener.Addr().String(), pool)
	} else {
		d.srv.Start()
		d.client = &http.Client{Timeout: 30 * time.Second}
	}
	return d
}

// DefenderHandler returns a fake Defender API's HTTP handler without a
// server of its own, for a program that serves it on an address of its
// choosing (bench/gen serve-manifest).
func DefenderHandler(cfg DefenderConfig) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &Defender{cfg: cfg}
	return http.HandlerFunc(d.serve)
}

// URL is the base URL, usable as MDE_API_URL.
func (d *Defender) URL() string { return d.srv.URL }

// Client returns a client for the fake (trusting its certificate with TLS;
// with TLS it routes every host name to the fake).
func (d *Defender) Client() *http.Client { return d.client }

// Close stops the server.
func (d *Defender) Close() { d.srv.Close() }

// Calls returns the time of every request to the export path, scripted
// failures included.
func (d *Defender) Calls() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.calls...)
}

// CallsOf returns the number of calls of one export (its canonical name),
// scripted failures included.
func (d *Defender) CallsOf(export string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.callsOf[export]
}

// LastQuery returns the query parameters of the last export call.
func (d *Defender) LastQuery() url.Values {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastQuery
}

// Fail queues scripted answers, served in order before normal ones.
func (d *Defender) Fail(responses ...Response) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queue = append(d.queue, responses...)
}

func (d *Defender) serve(w http.ResponseWriter, r *http.Request) {
	name, _ := strings.CutPrefix(strings.ToLower(strings.TrimSuffix(r.URL.Path, "/")), "/api/machines/")
	export, known := schema.LookupExport(name)
	if r.Method != http.MethodGet || !known || (d.cfg.ManifestOf == nil && export.Name != schema.ExportInfoGathering) {
		defenderError(w, http.StatusNotFound, "ResourceNotFound", "Resource not found")
		return
	}
	d.mu.Lock()
	d.calls = append(d.calls, d.cfg.Now())
	if d.callsOf == nil {
		d.callsOf = map[string]int{}
	}
	d.callsOf[export.Name]++
	d.lastQuery = r.URL.Query()
	var scripted *Response
	if len(d.queue) > 0 {
		scripted = &d.queue[0]
		d.queue = d.queue[1:]
	}
	d.mu.Unlock()
	if scripted != nil {
		for k, vs := range scripted.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
		}
		w.WriteHeader(scripted.Status)
		_, _ = w.Write([]byte(scripted.Body))
		return
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	authorized := ok && bearer != ""
	if authorized && d.cfg.Authorize != nil {
		authorized = d.cfg.Authorize(bearer)
	}
	if !authorized {
		defenderError(w, http.StatusUnauthorized, "Unauthorized", "Authorization has been denied for this request.")
		return
	}
	var urls []string
	generated := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	switch {
	case d.cfg.ManifestOf != nil:
		var status int
		urls, generated, status = d.cfg.ManifestOf(export.Name)
		switch status {
		case http.StatusForbidden:
			defenderError(w, status, "Forbidden", "The application does not have any of the required application roles ("+export.Permission+") to access the resource.")
			return
		case http.StatusNotFound:
			defenderError(w, status, "ResourceNotFound", "Resource not found")
			return
		}
	case d.cfg.Manifest != nil:
		urls, generated = d.cfg.Manifest()
	}
	if urls == nil {
		urls = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#microsoft.windowsDefenderATP.api.ExportFilesResponse",
		"exportFiles":    urls,
		"generatedTime":  generated,
	})
}

// DefenderErrorBody returns Defender's JSON error body for code and message.
func DefenderErrorBody(code, message string) string {
	return `{"error":{"code":"` + code + `","message":"` + message + `","target":"00000000-0000-0000-0000-000000000000"}}`
}

func defenderError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(DefenderErrorBody(code, message)))
}
