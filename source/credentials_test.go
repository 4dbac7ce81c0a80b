package source_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/source"
)

const (
	tenant   = "11111111-2222-3333-4444-555555555555"
	clientID = "66666666-7777-8888-9999-000000000000"
	secret   = "s3cr3t~VALUE.never-logged"
)

func TestClientSecretAgainstFakeEntra(t *testing.T) {
	e := fakes.NewEntra(tenant, clientID, secret)
	defer e.Close()
	ts, kind, err := source.NewTokenSource(source.CredentialConfig{Names: testNames,
		Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		AuthorityHost: e.URL(), HTTPClient: e.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if kind != source.KindClientSecret {
		t.Fatalf("kind = %q", kind)
	}
	if e.TokenRequests() != 0 {
		t.Fatal("NewTokenSource made a network call")
	}
	ctx := context.Background()
	tok, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !e.ValidToken(tok) {
		t.Fatal("token not issued by the fake")
	}
	// A non-public authority host goes through instance discovery.
	if e.DiscoveryRequests() == 0 {
		t.Fatal("no instance discovery")
	}
	if got := e.Scopes(); len(got) != 1 || strings.Fields(got[0])[0] != source.DefaultTokenScope {
		t.Fatalf("scopes %v", got)
	}
	// Cached: an hour-long token is not fetched again.
	tok2, err := ts.Token(ctx)
	if err != nil || tok2 != tok || e.TokenRequests() != 1 {
		t.Fatalf("second token: %v, same=%v, requests=%d", err, tok2 == tok, e.TokenRequests())
	}
}

func TestTokenRefreshWhenLifetimeShort(t *testing.T) {
	e := fakes.NewEntra(tenant, clientID, secret)
	defer e.Close()
	// Shorter than MSAL's 5-minute refresh margin: every call refreshes.
	e.SetTokenLifetime(time.Minute)
	ts, _, err := source.NewTokenSource(source.CredentialConfig{Names: testNames,
		Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret, Scope: "https://api-gov.securitycenter.microsoft.us/.default",
		AuthorityHost: e.URL(), HTTPClient: e.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		tok, err := ts.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !e.ValidToken(tok) {
			t.Fatal("invalid token")
		}
		seen[tok] = true
	}
	if len(seen) != 3 || e.TokenRequests() != 3 {
		t.Fatalf("distinct tokens %d, token requests %d; want 3 and 3", len(seen), e.TokenRequests())
	}
	for _, s := range e.Scopes() {
		if strings.Fields(s)[0] != "https://api-gov.securitycenter.microsoft.us/.default" {
			t.Fatalf("scope %q", s)
		}
	}
}

func TestPublicCloudDefaultAuthority(t *testing.T) {
	e := fakes.NewEntra(tenant, clientID, secret)
	defer e.Close()
	// No AuthorityHost: the SDK's public-cloud default, routed to the fake.
	ts, _, err := source.NewTokenSource(source.CredentialConfig{Names: testNames,
		Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret, HTTPClient: e.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !e.ValidToken(tok) {
		t.Fatal("invalid token")
	}
	hosts := e.Hosts()
	if !slices.Contains(hosts, "login.microsoftonline.com") {
		t.Fatalf("hosts %v: public cloud not used", hosts)
	}
	// GCC High host.
	ts, _, err = source.NewTokenSource(source.CredentialConfig{Names: testNames,
		Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret, HTTPClient: e.Client(),
		AuthorityHost: "https://login.microsoftonline.us",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(e.Hosts(), "login.microsoftonline.us") {
		t.Fatalf("hosts %v: login.microsoftonline.us not used", e.Hosts())
	}
}

func TestWrongSecretNamesTheProblem(t *testing.T) {
	e := fakes.NewEntra(tenant, clientID, "the-right-one")
	defer e.Close()
	ts, _, err := source.NewTokenSource(source.CredentialConfig{Names: testNames,
		Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret,
		AuthorityHost: e.URL(), HTTPClient: e.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ts.Token(context.Background())
	var ae *source.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *AuthError", err, err)
	}
	msg := err.Error()
	for _, want := range []string{"invalid_client", "AADSTS7000215", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	assertNoSecrets(t, []string{msg}, secret)
	if source.IsRetryable(err) {
		t.Error("auth error retryable")
	}
}

func TestUnknownClientAndTenant(t *testing.T) {
	e := fakes.NewEntra(tenant, clientID, secret)
	defer e.Close()
	for _, tc := range []struct{ tenant, client, want string }{
		{tenant, "00000000-0000-0000-0000-00000000dead", "AZURE_CLIENT_ID"},
		{"99999999-0000-0000-0000-000000000000", clientID, "AZURE_TENANT_ID"},
	} {
		ts, _, err := source.NewTokenSource(source.CredentialConfig{Names: testNames,
			Kind: source.KindClientSecret, TenantID: tc.tenant, ClientID: tc.client, ClientSecret: secret,
			AuthorityHost: e.URL(), HTTPClient: e.Client(),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ts.Token(context.Background())
		var ae *source.AuthError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want an AuthError naming %s", err, tc.want)
		}
		if err != nil {
			assertNoSecrets(t, []string{err.Error()}, secret)
		}
	}
}

func TestCredentialSelection(t *testing.T) {
	// The kind decides; the fields of other credentials are not read.
	ts, kind, err := source.NewTokenSource(source.CredentialConfig{Names: testNames, Kind: source.KindAccessToken, AccessToken: "static-token", ClientSecret: "x"})
	if err != nil || kind != source.KindAccessToken {
		t.Fatalf("kind %q err %v", kind, err)
	}
	if tok, _ := ts.Token(context.Background()); tok != "static-token" {
		t.Fatalf("token %q", tok)
	}
	for _, cfg := range []source.CredentialConfig{
		{Kind: source.KindManagedIdentity},
		{Kind: source.KindManagedIdentity, ClientID: clientID, ClientSecret: secret, AccessToken: "ignored"},
		{Kind: source.KindWorkloadIdentity, TenantID: tenant, ClientID: clientID, FederatedTokenFile: "/nonexistent", ClientSecret: secret},
		{Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret, CertificatePath: "/nonexistent.pem"},
	} {
		if _, kind, err = source.NewTokenSource(cfg); err != nil || kind != cfg.Kind {
			t.Errorf("%s: kind %q err %v", cfg.Kind, kind, err)
		}
	}
	for _, tc := range []struct {
		cfg  source.CredentialConfig
		want string
	}{
		{source.CredentialConfig{}, "no kind"},
		{source.CredentialConfig{Names: testNames, Kind: "kerberos"}, "kerberos"},
		{source.CredentialConfig{Names: testNames, Kind: source.KindAccessToken, ClientSecret: secret}, "MDE_ACCESS_TOKEN not set"},
		{source.CredentialConfig{Names: testNames, Kind: source.KindClientSecret, ClientSecret: secret}, "AZURE_TENANT_ID and AZURE_CLIENT_ID not set"},
		{source.CredentialConfig{Names: testNames, Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, AccessToken: "tok"}, "AZURE_CLIENT_SECRET not set"},
		{source.CredentialConfig{Names: testNames, Kind: source.KindCertificate, TenantID: tenant, ClientID: clientID}, "AZURE_CLIENT_CERTIFICATE_PATH not set"},
		{source.CredentialConfig{Names: testNames, Kind: source.KindCertificate, TenantID: tenant, ClientID: clientID, CertificatePath: "/nonexistent.pem"}, "AZURE_CLIENT_CERTIFICATE_PATH"},
		{source.CredentialConfig{Names: testNames, Kind: source.KindWorkloadIdentity, TenantID: tenant, ClientID: clientID}, "AZURE_FEDERATED_TOKEN_FILE not set"},
		{source.CredentialConfig{Names: testNames, Kind: source.KindClientSecret, TenantID: tenant, ClientID: clientID, ClientSecret: secret, AuthorityHost: "http://login.example"}, "AZURE_AUTHORITY_HOST"},
	} {
		_, _, err := source.NewTokenSource(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one naming %q", tc.cfg.Kind, err, tc.want)
			continue
		}
		assertNoSecrets(t, []string{err.Error()}, secret)
	}
}
