package source_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/source"
)

const partSig = "SIGNATUREabc%2Bdef%3D"

var exportURLs = []string{
	"https://acct.blob.core.windows.net/temp-1/2026-03-01/InfoGatheringExport/json/OrgId=o/_RbacGroupId=1/part-00002-x.c000.json.gz?sv=2020-08-04&se=2026-03-01T13%3A00%3A00Z&sr=b&sp=r&sig=" + partSig,
	"https://acct.blob.core.windows.net/temp-1/2026-03-01/InfoGatheringExport/json/OrgId=o/_RbacGroupId=0/part-00001-x.c000.json.gz?sv=2020-08-04&se=2026-03-01T13%3A00%3A00Z&sr=b&sp=r&sig=" + partSig,
}

type exportRig struct {
	def    *fakes.Defender
	clock  *fakes.Clock
	client *source.ExportClient
	logs   *testutil.SyncBuffer
}

func newExportRig(t *testing.T, urls []string, hours int) *exportRig {
	t.Helper()
	r := &exportRig{clock: fakes.NewClock(t0)}
	r.def = fakes.NewDefender(fakes.DefenderConfig{
		TLS: true,
		Now: r.clock.Now,
		Manifest: func() ([]string, string) {
			return urls, "2026-03-01T10:01:00Z"
		},
		Authorize: func(b string) bool { return b == "the-token" },
	})
	t.Cleanup(r.def.Close)
	log, buf := testLogger()
	r.logs = buf
	c, err := source.NewExportClient(source.ExportConfig{Names: testNames,
		BaseURL:       r.def.URL(),
		SASValidHours: hours,
		Tokens:        source.TokenSourceFunc(func(context.Context) (string, error) { return "the-token", nil }),
		HTTPClient:    r.def.Client(),
		Clock:         r.clock,
		Logger:        log,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.client = c
	return r
}

func TestManifestSuccess(t *testing.T) {
	r := newExportRig(t, exportURLs, 6)
	m, err := r.client.Manifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.GeneratedTime != "2026-03-01T10:01:00Z" || m.Export != "InfoGatheringExport" || len(m.Parts) != 2 {
		t.Fatalf("manifest %+v", m)
	}
	if !strings.Contains(m.Parts[0].Path, "part-00001") || m.Parts[0].URL != exportURLs[1] || m.Parts[1].Index != 1 {
		t.Fatalf("parts not sorted by path: %+v", m.Parts)
	}
	if got := r.def.LastQuery().Get("sasValidHours"); got != "6" {
		t.Fatalf("sasValidHours = %q", got)
	}
	if r.client.Calls() != 1 || len(r.def.Calls()) != 1 {
		t.Fatalf("calls %d / %d", r.client.Calls(), len(r.def.Calls()))
	}
	assertNoSecrets(t, []string{r.logs.String()}, "the-token", partSig)
}

func TestManifestNoSASValidHoursByDefault(t *testing.T) {
	r := newExportRig(t, exportURLs, 0)
	if _, err := r.client.Manifest(context.Background()); err != nil {
		t.Fatal(err)
	}
	if q := r.def.LastQuery(); q.Has("sasValidHours") {
		t.Fatalf("query %v", q)
	}
}

func TestManifestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "42", 42 * time.Second},
		{"http-date", t0.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newExportRig(t, exportURLs, 0)
			r.def.Fail(fakes.Response{Status: 429, Header: http.Header{"Retry-After": {tc.header}},
				Body: fakes.DefenderErrorBody("TooManyRequests", "Rate limit is exceeded.")})
			m, err := r.client.Manifest(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Parts) != 2 {
				t.Fatal("no parts")
			}
			calls := r.def.Calls()
			if len(calls) != 2 {
				t.Fatalf("calls %d", len(calls))
			}
			if gap := calls[1].Sub(calls[0]); gap < tc.want {
				t.Fatalf("retried after %v, Retry-After was %v", gap, tc.want)
			}
		})
	}
}

func TestManifest5xxBurst(t *testing.T) {
	r := newExportRig(t, exportURLs, 0)
	r.def.Fail(fakes.Response{Status: 503}, fakes.Response{Status: 500, Body: "oops"}, fakes.Response{Status: 502})
	if _, err := r.client.Manifest(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.client.Calls() != 4 {
		t.Fatalf("calls %d, want 4", r.client.Calls())
	}
	calls := r.def.Calls()
	for i := 1; i < len(calls); i++ {
		if calls[i].Sub(calls[i-1]) <= 0 {
			t.Fatalf("no backoff between calls %d and %d", i-1, i)
		}
	}
}

func TestManifest5xxGivesUp(t *testing.T) {
	r := newExportRig(t, exportURLs, 0)
	for i := 0; i < 200; i++ {
		r.def.Fail(fakes.Response{Status: 503})
	}
	_, err := r.client.Manifest(context.Background())
	if err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("err = %v", err)
	}
	if elapsed := r.clock.Now().Sub(t0); elapsed > 6*time.Minute {
		t.Fatalf("retried for %v, bound is 5m", elapsed)
	}
}

func TestManifestPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resp   fakes.Response
		status int
		want   []string
	}{
		{"401", fakes.Response{Status: 401, Body: fakes.DefenderErrorBody("Unauthorized", "Authorization has been denied")},
			401, []string{"401", "Unauthorized", "Authorization has been denied", "MDE_TOKEN_SCOPE", "AZURE_TENANT_ID"}},
		{"403", fakes.Response{Status: 403, Body: fakes.DefenderErrorBody("Forbidden", "Missing application roles")},
			403, []string{"403", "Forbidden: Missing application roles", "Vulnerability.Read.All", "admin consent"}},
		{"404", fakes.Response{Status: 404, Body: fakes.DefenderErrorBody("ResourceNotFound", "Resource not found")},
			404, []string{"404", "ResourceNotFound", "MDE_API_URL"}},
		{"malformed", fakes.Response{Status: 200, Body: `{"exportFiles": [`}, 200, []string{"malformed"}},
		{"html", fakes.Response{Status: 200, Body: `<html>hello</html>`}, 200, []string{"malformed"}},
		{"no exportFiles", fakes.Response{Status: 200, Body: `{"generatedTime":"2026-03-01T10:01:00Z"}`}, 200, []string{"no exportFiles"}},
		{"no generatedTime", fakes.Response{Status: 200, Body: `{"exportFiles":["https://a/b/c?sig=SECRET"]}`}, 200, []string{"no generatedTime"}},
		{"bad url", fakes.Response{Status: 200, Body: `{"exportFiles":["ftp://a/b/c?sig=SECRET"],"generatedTime":"x"}`}, 200, []string{"not an absolute"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newExportRig(t, exportURLs, 0)
			r.def.Fail(tc.resp)
			_, err := r.client.Manifest(context.Background())
			var ae *source.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status {
				t.Fatalf("err = %v, want *APIError with status %d", err, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err.Error(), w)
				}
			}
			if r.client.Calls() != 1 {
				t.Errorf("permanent error retried: %d calls", r.client.Calls())
			}
			assertNoSecrets(t, []string{err.Error(), r.logs.String()}, "the-token", "SECRET")
		})
	}
}

func TestManifestUnauthorizedToken(t *testing.T) {
	r := newExportRig(t, exportURLs, 0)
	c, err := source.NewExportClient(source.ExportConfig{Names: testNames,
		BaseURL: r.def.URL(), HTTPClient: r.def.Client(), Clock: r.clock,
		Tokens: source.TokenSourceFunc(func(context.Context) (string, error) { return "wrong-token", nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Manifest(context.Background())
	var ae *source.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("err = %v", err)
	}
}

func TestManifestEmptyExport(t *testing.T) {
	r := newExportRig(t, []string{}, 0)
	_, err := r.client.Manifest(context.Background())
	if !errors.Is(err, source.ErrEmptyExport) {
		t.Fatalf("err = %v", err)
	}
}

func TestManifestTokenErrorIsPermanent(t *testing.T) {
	r := newExportRig(t, exportURLs, 0)
	c, _ := source.NewExportClient(source.ExportConfig{Names: testNames,
		BaseURL: r.def.URL(), HTTPClient: r.def.Client(), Clock: r.clock,
		Tokens: source.TokenSourceFunc(func(context.Context) (string, error) {
			return "", &source.AuthError{Kind: "client-secret", Err: errors.New("invalid_client")}
		}),
	})
	_, err := c.Manifest(context.Background())
	var ae *source.AuthError
	if !errors.As(err, &ae) || len(r.def.Calls()) != 0 {
		t.Fatalf("err = %v, calls %d", err, len(r.def.Calls()))
	}
}

func TestNewExportClientValidates(t *testing.T) {
	ts := source.TokenSourceFunc(func(context.Context) (string, error) { return "t", nil })
	for _, cfg := range []source.ExportConfig{
		{BaseURL: "api.securitycenter.microsoft.com", Tokens: ts},
		{BaseURL: "https://api.securitycenter.microsoft.com", Tokens: ts, SASValidHours: 25},
		{BaseURL: "https://api.securitycenter.microsoft.com"},
	} {
		if _, err := source.NewExportClient(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// Every call, retries included, goes through the limiter: over many
// Manifest calls with 429s and 5xx mixed in, no window of a minute holds
// more than 5 calls and no window of an hour more than 20.
func TestManifestRateLimited(t *testing.T) {
	r := newExportRig(t, exportURLs, 0)
	for i := 0; i < 30; i++ {
		if i%4 == 0 {
			r.def.Fail(fakes.Response{Status: 503})
		}
		if i%7 == 0 {
			r.def.Fail(fakes.Response{Status: 429, Header: http.Header{"Retry-After": {"1"}}})
		}
		if _, err := r.client.Manifest(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	calls := r.def.Calls()
	if len(calls) != r.client.Calls() || len(calls) < 40 {
		t.Fatalf("server saw %d calls, client counted %d", len(calls), r.client.Calls())
	}
	checkWindows(t, calls)
}

func checkWindows(t *testing.T, calls []time.Time) {
	t.Helper()
	for i := range calls {
		if i+5 < len(calls) && calls[i+5].Sub(calls[i]) < time.Minute {
			t.Fatalf("6 calls within %v (from call %d)", calls[i+5].Sub(calls[i]), i)
		}
		if i+20 < len(calls) && calls[i+20].Sub(calls[i]) < time.Hour {
			t.Fatalf("21 calls within %v (from call %d)", calls[i+20].Sub(calls[i]), i)
		}
	}
}

func TestRateLimiter(t *testing.T) {
	clock := fakes.NewClock(t0)
	l := source.NewRateLimiter(clock, source.ExportLimits()...)
	var times []time.Time
	for i := 0; i < 45; i++ {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		times = append(times, clock.Now())
	}
	checkWindows(t, times)
	// Not slower than needed: the 6th call is allowed exactly one minute
	// after the first, the 21st exactly one hour after the first.
	if d := times[5].Sub(times[0]); d != time.Minute {
		t.Fatalf("6th call after %v", d)
	}
	if d := times[20].Sub(times[0]); d != time.Hour {
		t.Fatalf("21st call after %v", d)
	}
}

func TestRateLimiterConcurrentAndCancel(t *testing.T) {
	clock := fakes.NewClock(t0)
	l := source.NewRateLimiter(clock, source.Limit{N: 2, Per: time.Second})
	var mu sync.Mutex
	var times []time.Time
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			mu.Lock()
			times = append(times, clock.Now())
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(times) != 8 {
		t.Fatal(len(times))
	}
	// 8 calls at 2 a second need at least 3 seconds.
	if d := clock.Now().Sub(t0); d < 3*time.Second {
		t.Fatalf("8 calls allowed within %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// TestManifestNotLicensedOrForbiddenNamesTheExport: an export answering 404
// (the tenant lacks the add-on) or 403 (the app lacks the permission)
// fails at once, with a message naming the export and what it needs.
func TestManifestNotLicensedOrForbiddenNamesTheExport(t *testing.T) {
	for _, tc := range []struct {
		export string
		status int
		wants  []string
	}{
		{"SoftwareVulnerabilitiesExport", http.StatusForbidden, []string{"403", "SoftwareVulnerabilitiesExport", "Vulnerability.Read.All"}},
		{"BaselineComplianceAssessmentExport", http.StatusForbidden, []string{"403", "BaselineComplianceAssessmentExport", "SecurityBaselinesAssessment.Read.All"}},
		{"SoftwareInventoryExport", http.StatusForbidden, []string{"SoftwareInventoryExport", "Software.Read.All"}},
		{"HardwareFirmwareInventoryExport", http.StatusNotFound, []string{"404", "HardwareFirmwareInventoryExport", "Defender Vulnerability Management add-on"}},
	} {
		def := fakes.NewDefender(fakes.DefenderConfig{ManifestOf: func(export string) ([]string, string, int) {
			if export == tc.export {
				return nil, "", tc.status
			}
			return exportURLs, "2026-03-01T10:01:00Z", 0
		}})
		defer def.Close()
		c, err := source.NewExportClient(source.ExportConfig{Names: testNames, BaseURL: def.URL(), Export: tc.export,
			Tokens: source.TokenSourceFunc(func(context.Context) (string, error) { return "t", nil }), HTTPClient: def.Client()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Manifest(context.Background())
		var ae *source.APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || def.CallsOf(tc.export) != 1 {
			t.Fatalf("%s: %v after %d calls; want an APIError %d at once", tc.export, err, def.CallsOf(tc.export), tc.status)
		}
		for _, w := range tc.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", tc.export, err, w)
			}
		}
	}
}
