package fakes

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

func get(t *testing.T, c *http.Client, method, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestBlobStore(t *testing.T) {
	s := NewBlobStore()
	defer s.Close()
	s.Put("c", "a/b=1/part.json.gz", []byte("0123456789"))
	c := http.DefaultClient
	u := s.SASURL("c", "a/b=1/part.json.gz", time.Now().Add(time.Hour))
	resp, body := get(t, c, "GET", u, nil)
	if resp.StatusCode != 200 || body != "0123456789" || resp.Header.Get("x-ms-blob-type") != "BlockBlob" || resp.Header.Get("ETag") == "" {
		t.Fatalf("GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, c, "GET", u, map[string]string{"x-ms-range": "bytes=4-"})
	if resp.StatusCode != 206 || body != "456789" || resp.Header.Get("Content-Range") != "bytes 4-9/10" {
		t.Fatalf("range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, c, "GET", u, map[string]string{"Range": "bytes=2-3"})
	if resp.StatusCode != 206 || body != "23" {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, c, "GET", u, map[string]string{"If-Match": `"other"`})
	if resp.StatusCode != 412 {
		t.Fatalf("If-Match: %d", resp.StatusCode)
	}
	resp, body = get(t, c, "HEAD", u, nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 10 {
		t.Fatalf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	past := s.SASURL("c", "a/b=1/part.json.gz", time.Now().Add(-time.Minute))
	resp, body = get(t, c, "GET", past, nil)
	if resp.StatusCode != 403 || resp.Header.Get("x-ms-error-code") != "AuthenticationFailed" || !strings.Contains(body, "<Code>AuthenticationFailed</Code>") {
		t.Fatalf("expired: %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, c, "GET", strings.Replace(u, "sig=", "sig=x", 1), nil)
	if resp.StatusCode != 403 {
		t.Fatalf("bad sig: %d", resp.StatusCode)
	}
	resp, body = get(t, c, "GET", s.SASURL("c", "missing", time.Now().Add(time.Hour)), nil)
	if resp.StatusCode != 404 || !strings.Contains(body, "BlobNotFound") {
		t.Fatalf("missing: %d %q", resp.StatusCode, body)
	}
	s.ExpireSignatures()
	if resp, _ = get(t, c, "GET", u, nil); resp.StatusCode != 403 {
		t.Fatalf("revoked sig: %d", resp.StatusCode)
	}
	if resp, _ = get(t, c, "GET", s.SASURL("c", "a/b=1/part.json.gz", time.Now().Add(time.Hour)), nil); resp.StatusCode != 200 {
		t.Fatalf("new sig: %d", resp.StatusCode)
	}
	if s.Requests() != 10 {
		t.Fatalf("requests %d", s.Requests())
	}
}

func TestBlobProxyFaults(t *testing.T) {
	s := NewBlobStore()
	defer s.Close()
	p := NewBlobProxy(s.URL())
	defer p.Close()
	s.Put("c", "x/part.gz", []byte(strings.Repeat("z", 5000)))
	u := p.Rewrite(s.SASURL("c", "x/part.gz", time.Now().Add(time.Hour)))
	if !strings.HasPrefix(u, p.URL()) {
		t.Fatal(u)
	}
	p.Inject("part.gz", Fault{Status: 503}, Fault{CopyPending: true}, Fault{Expired: true}, Fault{CutAfter: 100})
	c := &http.Client{}
	if resp, _ := get(t, c, "GET", u, nil); resp.StatusCode != 503 {
		t.Fatal(resp.StatusCode)
	}
	if resp, body := get(t, c, "GET", u, nil); resp.StatusCode != 200 || body != "" || resp.Header.Get("x-ms-copy-status") != "pending" {
		t.Fatal(resp.StatusCode, body)
	}
	if resp, _ := get(t, c, "GET", u, nil); resp.StatusCode != 403 {
		t.Fatal(resp.StatusCode)
	}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(b) != 100 {
		t.Fatalf("cut: %d bytes, err %v", len(b), err)
	}
	if resp, body := get(t, c, "GET", u, nil); resp.StatusCode != 200 || len(body) != 5000 {
		t.Fatal(resp.StatusCode, len(body))
	}
	p.ExpireSignatures()
	if resp, _ := get(t, c, "GET", u, nil); resp.StatusCode != 403 {
		t.Fatal("old signature still accepted")
	}
	if resp, _ := get(t, c, "GET", p.Rewrite(s.SASURL("c", "x/part.gz", time.Now().Add(2*time.Hour))), nil); resp.StatusCode != 200 {
		t.Fatal("new signature refused")
	}
}

func TestDefender(t *testing.T) {
	d := NewDefender(DefenderConfig{TLS: true,
		Manifest:  func() ([]string, string) { return []string{"https://a/b?sig=1"}, "2026-01-01T00:00:00Z" },
		Authorize: func(b string) bool { return b == "ok" }})
	defer d.Close()
	resp, body := get(t, d.Client(), "GET", d.URL()+"/api/Machines/InfoGatheringExport?sasValidHours=2", map[string]string{"Authorization": "Bearer ok"})
	if resp.StatusCode != 200 || !strings.Contains(body, `"exportFiles":["https://a/b?sig=1"]`) || d.LastQuery().Get("sasValidHours") != "2" {
		t.Fatal(resp.StatusCode, body)
	}
	if resp, _ = get(t, d.Client(), "GET", d.URL()+"/api/machines/InfoGatheringExport", map[string]string{"Authorization": "Bearer no"}); resp.StatusCode != 401 {
		t.Fatal(resp.StatusCode)
	}
	d.Fail(Response{Status: 429, Header: http.Header{"Retry-After": {"3"}}})
	if resp, _ = get(t, d.Client(), "GET", d.URL()+"/api/machines/InfoGatheringExport", nil); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Fatal(resp.StatusCode)
	}
	if len(d.Calls()) != 3 {
		t.Fatal(len(d.Calls()))
	}
}

func TestClock(t *testing.T) {
	start := time.Unix(0, 0)
	c := NewClock(start)
	<-c.After(time.Minute)
	c.Advance(time.Second)
	if c.Now().Sub(start) != 61*time.Second || len(c.Sleeps()) != 1 {
		t.Fatal(c.Now(), c.Sleeps())
	}
}

func TestBlobProxyHold(t *testing.T) {
	s := NewBlobStore()
	defer s.Close()
	p := NewBlobProxy(s.URL())
	defer p.Close()
	s.Put("c", "x/part.gz", []byte("held content"))
	u := p.Rewrite(s.SASURL("c", "x/part.gz", time.Now().Add(time.Hour)))
	hold := make(chan struct{})
	p.Inject("part.gz", Fault{Hold: hold}, Fault{Hold: hold, Status: 503})
	type answer struct {
		status int
		body   string
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(u)
			if err != nil {
				answers <- answer{status: -1, body: err.Error()}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, string(b)}
		}()
	}
	testutil.Poll(t, 10*time.Second, "2 requests held", func() bool { return p.Held() == 2 })
	select {
	case a := <-answers:
		t.Fatalf("a held request was answered: %+v", a)
	default:
	}
	// Released: the plain hold forwards, the other answers its status.
	close(hold)
	got := map[int]string{}
	for range 2 {
		a := <-answers
		got[a.status] = a.body
	}
	if got[200] != "held content" || got[503] == "" || p.Held() != 0 {
		t.Fatalf("answers after release: %v, held %d", got, p.Held())
	}

	// A signature expired while its request is held gets 403.
	hold2 := make(chan struct{})
	p.Inject("part.gz", Fault{Hold: hold2})
	go func() {
		resp, err := http.Get(u)
		if err != nil {
			answers <- answer{status: -1, body: err.Error()}
			return
		}
		resp.Body.Close()
		answers <- answer{status: resp.StatusCode}
	}()
	testutil.Poll(t, 10*time.Second, "the request held", func() bool { return p.Held() == 1 })
	p.ExpireSignatures()
	close(hold2)
	if a := <-answers; a.status != 403 {
		t.Fatalf("held request with a signature expired meanwhile: %+v", a)
	}
}

// TestBlobProxyRate: a body comes through intact and no faster than the
// rate set (a lower bound only: a slow machine may always be slower).
func TestBlobProxyRate(t *testing.T) {
	s := NewBlobStore()
	defer s.Close()
	content := strings.Repeat("0123456789abcdef", 32<<10) // 512 KiB
	s.Put("c", "p.json.gz", []byte(content))
	p := NewBlobProxy(s.URL())
	defer p.Close()
	u := p.Rewrite(s.SASURL("c", "p.json.gz", time.Now().Add(time.Hour)))

	p.SetRate(1 << 20) // 1 MiB/s: the first 32 KiB chunk goes at once, the rest takes ≥ 0.45 s
	began := time.Now()
	resp, body := get(t, http.DefaultClient, "GET", u, nil)
	if took := time.Since(began); took < 450*time.Millisecond {
		t.Fatalf("512 KiB at 1 MiB/s took %v", took)
	}
	if resp.StatusCode != 200 || body != content {
		t.Fatalf("throttled GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	p.SetRate(0)
	if resp, body = get(t, http.DefaultClient, "GET", u, nil); resp.StatusCode != 200 || body != content {
		t.Fatalf("unthrottled GET: %d, %d bytes", resp.StatusCode, len(body))
	}
}
