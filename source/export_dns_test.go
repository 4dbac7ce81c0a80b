package source_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/source"
)

// noSuchHostClient fails every connection as a host name that does not
// exist would (DNS NXDOMAIN).
func noSuchHostClient(dials *int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			*dials++
			host, _, _ := net.SplitHostPort(addr)
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		},
	}}
}

// A host name that does not exist is a typo in MDE_API_URL, not a
// transient failure: one attempt, no retry, an error naming the setting.
func TestExportHostThatDoesNotExistFailsAtOnce(t *testing.T) {
	clock := fakes.NewClock(t0)
	log, logs := testLogger()
	dials := 0
	c, err := source.NewExportClient(source.ExportConfig{Names: testNames,
		BaseURL:    "https://api.securitycentre.microsoft.com",
		Tokens:     source.TokenSourceFunc(func(context.Context) (string, error) { return "tok-value", nil }),
		HTTPClient: noSuchHostClient(&dials),
		Clock:      clock,
		Logger:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Manifest(context.Background())
	if !errors.Is(err, source.ErrNoSuchHost) || source.IsRetryable(err) {
		t.Fatalf("err = %v, want ErrNoSuchHost, not retryable", err)
	}
	for _, want := range []string{"MDE_API_URL", "api.securitycentre.microsoft.com", "does not exist"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if dials != 1 || c.Calls() != 1 || len(clock.Sleeps()) != 0 || strings.Contains(logs.String(), "retrying") {
		t.Fatalf("dials %d, calls %d, waits %v, logs %s: want one attempt and no retry", dials, c.Calls(), clock.Sleeps(), logs.String())
	}
}

// Likewise an authority host that does not exist: AZURE_AUTHORITY_HOST.
func TestAuthorityHostThatDoesNotExistFailsAtOnce(t *testing.T) {
	dials := 0
	ts, _, err := source.NewTokenSource(source.CredentialConfig{Names: testNames,
		Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		AuthorityHost: "https://login.microsoftonline.invalid", HTTPClient: noSuchHostClient(&dials),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.Token(context.Background())
	var ae *source.AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "AZURE_AUTHORITY_HOST") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
	// No retries (azcore's policy would make 8 attempts); MSAL itself
	// asks instance discovery twice.
	if dials > 2 {
		t.Fatalf("%d connection attempts, want at most 2", dials)
	}
	assertNoSecrets(t, []string{err.Error()}, secret)
}
