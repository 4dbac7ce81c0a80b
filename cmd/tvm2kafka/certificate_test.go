package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A client certificate that cannot be used is a configuration error:
// exit 2 before any network call, naming the setting to fix.
func TestUnusableCertificateExits2BeforeAnyNetworkCall(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\nabc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "right-password"
	cases := []struct {
		name, path, password string
		wants                []string
	}{
		{"wrong PKCS#12 password", "testdata/client-legacy.p12", "wrong-password-x", []string{"AZURE_CLIENT_CERTIFICATE_PASSWORD", "wrong password"}},
		{"PKCS#12 without password", "testdata/client-legacy.p12", "", []string{"AZURE_CLIENT_CERTIFICATE_PASSWORD", "no password"}},
		{"unparseable file", garbage, "", []string{"AZURE_CLIENT_CERTIFICATE_PATH", "not a PEM or PKCS#12"}},
		{"PKCS#12 with SHA-256 integrity", "testdata/client-sha256.p12", password, []string{"AZURE_CLIENT_CERTIFICATE_PATH", "-legacy"}},
		{"certificate without key", "testdata/client-cert-only.pem", "", []string{"AZURE_CLIENT_CERTIFICATE_PATH", "no private key"}},
		{"missing file", filepath.Join(t.TempDir(), "missing.pem"), "", []string{"AZURE_CLIENT_CERTIFICATE_PATH", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{
				"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_AUTHORITY_HOST": srv.URL,
				"AZURE_CLIENT_CERTIFICATE_PATH": tc.path, "AZURE_CLIENT_CERTIFICATE_PASSWORD": tc.password,
				"MDE_API_URL": srv.URL, "KAFKA_BROKERS": strings.TrimPrefix(srv.URL, "https://"), "LOG_FORMAT": "console",
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"run"}, envOf(env), &stdout, &stderr); code != exitUsage {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			for _, w := range tc.wants {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not mention %q:\n%s", w, stderr.String())
				}
			}
			if tc.password != "" && strings.Contains(stderr.String(), tc.password) {
				t.Errorf("stderr shows the password:\n%s", stderr.String())
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d network calls", n)
	}
	// Usable certificates pass the configuration check.
	for _, c := range []struct{ path, password string }{{"testdata/client-legacy.p12", password}, {"testdata/client.pem", ""}} {
		raw := defaultValues()
		for k, v := range map[string]string{"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "KAFKA_BROKERS": "127.0.0.1:9092",
			"AZURE_CLIENT_CERTIFICATE_PATH": c.path, "AZURE_CLIENT_CERTIFICATE_PASSWORD": c.password} {
			raw[k] = v
		}
		if cfg, err := parseConfig(raw); err != nil || cfg.auth != "client-certificate" {
			t.Errorf("%s: %v", c.path, err)
		}
	}
}
