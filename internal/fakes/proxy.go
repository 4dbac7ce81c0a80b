package fakes

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is one injected answer of a BlobProxy. Hold, when set, delays the
// request; then exactly one of the other kinds applies, checked in this
// order: Expired, CopyPending, CutAfter > 0, Status != 0; with none of
// them the request is forwarded.
type Fault struct {
	// Hold blocks the request until the channel is closed (or the client
	// gives up); Held counts the requests blocked. Signature expiry
	// (ExpireSignatures) is checked after the hold, so a test can expire
	// the signature of a request it holds.
	Hold <-chan struct{}
	// Status, Header and Body: answer this instead of forwarding. With an
	// Azure error status and no Body, an XML error body is written.
	Status int
	Header http.Header
	Body   string
	// CopyPending: 200 with an empty body, Content-Length 0 and
	// x-ms-copy-status: pending (a blob whose copy has not finished).
	CopyPending bool
	// CutAfter: forward the real response but close the connection after
	// this many body bytes.
	CutAfter int64
	// Expired: 403 AuthenticationFailed, as for an expired SAS.
	Expired bool
}

// BlobProxy is a fault-injecting reverse proxy in front of a BlobStore or
// a real Azurite. Faults are queued per blob path suffix and consumed one
// per request of a matching blob; other requests are forwarded untouched.
type BlobProxy struct {
	srv    *httptest.Server
	target *url.URL
	client *http.Client

	mu      sync.Mutex
	faults  map[string][]Fault
	seen    map[string]bool
	expired map[string]bool
	log     []BlobRequest
	held    int
	rate    int64     // bytes per second of all bodies together; 0 = unlimited
	next    time.Time // when the next body chunk may go out at rate
}

// NewBlobProxy starts a proxy to target (a base URL such as BlobStore.URL()
// or http://127.0.0.1:10000/devstoreaccount1; only scheme and host are used).
func NewBlobProxy(target string) *BlobProxy {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		panic("fakes: bad proxy target " + target)
	}
	p := &BlobProxy{
		target:  &url.URL{Scheme: u.Scheme, Host: u.Host},
		client:  &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}},
		faults:  map[string][]Fault{},
		seen:    map[string]bool{},
		expired: map[string]bool{},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

// URL is the proxy's base URL.
func (p *BlobProxy) URL() string { return p.srv.URL }

// Close stops the proxy.
func (p *BlobProxy) Close() { p.srv.Close() }

// Rewrite returns sasURL with its scheme and host replaced by the proxy's.
func (p *BlobProxy) Rewrite(sasURL string) string {
	u, err := url.Parse(sasURL)
	if err != nil {
		return sasURL
	}
	pu, _ := url.Parse(p.srv.URL)
	u.Scheme, u.Host = pu.Scheme, pu.Host
	return u.String()
}

// Inject queues faults for the blob whose path ends with blobPathSuffix.
func (p *BlobProxy) Inject(blobPathSuffix string, faults ...Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[blobPathSuffix] = append(p.faults[blobPathSuffix], faults...)
}

// Pending returns how many injected faults are still queued.
func (p *BlobProxy) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.faults {
		n += len(f)
	}
	return n
}

// SetRate limits the bytes per second of all forwarded response bodies
// together, as a slow storage account would serve them; 0 lifts the
// limit. It applies from the next chunk of every body in flight.
func (p *BlobProxy) SetRate(bytesPerSecond int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bytesPerSecond
	p.next = time.Time{}
}

// pace waits until n more body bytes may go out at the configured rate.
func (p *BlobProxy) pace(ctx context.Context, n int) {
	p.mu.Lock()
	if p.rate <= 0 {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(float64(n) * float64(time.Second) / float64(p.rate)))
	p.mu.Unlock()
	timer := time.NewTimer(time.Until(at))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// copyBody copies a response body, paced by SetRate.
func (p *BlobProxy) copyBody(ctx context.Context, w io.Writer, body io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			p.pace(ctx, n)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ExpireSignatures makes every SAS signature seen so far fail with
// 403 AuthenticationFailed from now on; new signatures pass.
func (p *BlobProxy) ExpireSignatures() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.seen {
		p.expired[s] = true
	}
}

// Held counts the requests blocked by a Hold fault right now.
func (p *BlobProxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Requests counts the requests the proxy received.
func (p *BlobProxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.log)
}

// Log returns every request the proxy received, with the status answered.
func (p *BlobProxy) Log() []BlobRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]BlobRequest(nil), p.log...)
}

func (p *BlobProxy) serve(w http.ResponseWriter, r *http.Request) {
	entry := BlobRequest{Method: r.Method, Path: r.URL.Path, Range: rangeHeader(r)}
	w = &loggingWriter{ResponseWriter: w, record: func(status int) {
		entry.Status = status
		p.mu.Lock()
		p.log = append(p.log, entry)
		p.mu.Unlock()
	}}
	sig := r.URL.Query().Get("sig")
	p.mu.Lock()
	if sig != "" {
		p.seen[sig] = true
	}
	var fault *Fault
	for suffix, q := range p.faults {
		if len(q) > 0 && strings.HasSuffix(r.URL.Path, suffix) {
			f := q[0]
			fault = &f
			p.faults[suffix] = q[1:]
			break
		}
	}
	if fault != nil && fault.Hold != nil {
		p.held++
	}
	p.mu.Unlock()
	if fault != nil && fault.Hold != nil {
		select {
		case <-fault.Hold:
		case <-r.Context().Done():
		}
		p.mu.Lock()
		p.held--
		p.mu.Unlock()
		if r.Context().Err() != nil {
			entry.Status = AzureError(w, http.StatusServiceUnavailable, "ServerBusy", "request abandoned while held")
			return
		}
	}
	p.mu.Lock()
	expired := sig != "" && p.expired[sig]
	p.mu.Unlock()
	if expired {
		entry.Status = authFailed(w, "Signed expiry time has passed")
		return
	}
	if fault != nil {
		switch {
		case fault.Expired:
			entry.Status = authFailed(w, "Signed expiry time has passed")
			return
		case fault.CopyPending:
			entry.Status = CopyPending(w, r)
			return
		case fault.CutAfter > 0:
			p.forward(w, r, fault.CutAfter, &entry.Status)
			return
		case fault.Status != 0:
			for k, vs := range fault.Header {
				for _, v := range vs {
					w.Header().Add(k, v)
				}
			}
			if fault.Body == "" && fault.Status >= 400 {
				code := http.StatusText(fault.Status)
				if fault.Status >= 500 {
					code = "ServerBusy"
				}
				if w.Header().Get("x-ms-error-code") == "" {
					w.Header().Set("x-ms-error-code", code)
				}
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(fault.Status)
				_, _ = w.Write([]byte(AzureErrorBody(code, "Injected fault.")))
			} else {
				w.WriteHeader(fault.Status)
				_, _ = w.Write([]byte(fault.Body))
			}
			entry.Status = fault.Status
			return
		}
	}
	p.forward(w, r, -1, &entry.Status)
}

// forward proxies r to the target; with cutAfter >= 0 it aborts the
// connection after that many body bytes. It stores the status answered.
func (p *BlobProxy) forward(w http.ResponseWriter, r *http.Request, cutAfter int64, status *int) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawPath = r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		*status = AzureError(w, http.StatusBadGateway, "ProxyError", "bad request URL")
		return
	}
	for k, vs := range r.Header {
		out.Header[k] = vs
	}
	resp, err := p.client.Do(out)
	if err != nil {
		*status = AzureError(w, http.StatusBadGateway, "ProxyError", "target unreachable")
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	if resp.ContentLength >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	*status = resp.StatusCode
	if cutAfter < 0 {
		p.copyBody(r.Context(), w, resp.Body)
		return
	}
	_, _ = io.CopyN(w, resp.Body, cutAfter)
	_ = http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler) // closes the connection mid-body
}

// CopyPending answers as Blob storage does for a blob whose copy has not
// finished: 200 with an empty body and x-ms-copy-status: pending. It
// returns the status written.
func CopyPending(w http.ResponseWriter, r *http.Request) int {
	h := w.Header()
	h.Set("Content-Length", "0")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", "\"0x8D000000000PEND\"")
	h.Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-copy-status", "pending")
	h.Set("x-ms-copy-progress", "0/1")
	h.Set("x-ms-request-id", "00000000-0000-0000-0000-00000000c0c0")
	h.Set("x-ms-version", versionOf(r))
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}
