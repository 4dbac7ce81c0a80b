//go:build integration

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
)

// noAppSecret removes the client secret: the run must use another credential.
var noAppSecret = map[string]string{"AZURE_CLIENT_SECRET": ""}

// noAzure removes every AZURE_* setting of the default environment.
var noAzure = map[string]string{"AZURE_TENANT_ID": "", "AZURE_CLIENT_ID": "", "AZURE_CLIENT_SECRET": ""}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// fetchToken gets a bearer token from the fake Entra ID directly (not
// through the binary), as a token obtained elsewhere would be.
func (w *world) fetchToken(scope string) string {
	w.t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_secret": {clientSecret}, "scope": {scope}}
	resp, err := w.entra.Client().PostForm(w.entra.URL()+"/"+tenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		w.t.Fatalf("token from the fake Entra ID: HTTP %d, %v", resp.StatusCode, err)
	}
	if !w.entra.ValidToken(body.AccessToken) {
		w.t.Fatal("the fake Entra ID does not accept its own token")
	}
	return body.AccessToken
}

// assertNotInOutput fails when out holds secret.
func assertNotInOutput(t *testing.T, res result, what, secret string) {
	t.Helper()
	if secret != "" && strings.Contains(res.Stdout+res.Stderr, secret) {
		t.Errorf("output holds the %s", what)
	}
}

// certificatePEM writes an RSA key and a self-signed certificate for it
// into one PEM file, as AZURE_CLIENT_CERTIFICATE_PATH takes it.
func certificatePEM(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "tvm2kafka e2e app"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...)
	path := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// federatedJWT returns a well-formed JWT such as the AKS workload identity
// webhook projects into the pod.
func federatedJWT(t *testing.T) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	var sig [32]byte
	if _, err := rand.Read(sig[:]); err != nil {
		t.Fatal(err)
	}
	return enc(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "e2e"}) + "." +
		enc(map[string]any{"iss": "https://oidc.prod-aks.azure.com/e2e/", "sub": "system:serviceaccount:mde:tvm2kafka",
			"aud": []string{"api://AzureADTokenExchange"}, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}) +
		"." + base64.RawURLEncoding.EncodeToString(sig[:])
}

// TestCertificateAndWorkloadIdentityCredentials: with no secret, the
// binary gets a token from Entra ID with a client certificate
// (AZURE_CLIENT_CERTIFICATE_PATH: a client assertion signed with its key)
// or with workload identity (AZURE_FEDERATED_TOKEN_FILE: a projected
// service-account JWT, never printed), and publishes the whole snapshot.
func TestCertificateAndWorkloadIdentityCredentials(t *testing.T) {
	cases := []struct {
		kind string
		env  func(t *testing.T) (env map[string]string, secret string)
	}{
		{"client-certificate", func(t *testing.T) (map[string]string, string) {
			return map[string]string{"AZURE_CLIENT_CERTIFICATE_PATH": certificatePEM(t)}, ""
		}},
		{"workload-identity", func(t *testing.T) (map[string]string, string) {
			jwt := federatedJWT(t)
			file := filepath.Join(t.TempDir(), "azure-identity-token")
			if err := os.WriteFile(file, []byte(jwt), 0o600); err != nil {
				t.Fatal(err)
			}
			return map[string]string{"AZURE_FEDERATED_TOKEN_FILE": file}, jwt
		}},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			w := newWorld(t, 600, 2)
			env, secret := tc.env(t)
			res := w.run(merge(noAppSecret, env))
			if secret != "" {
				assertNotInOutput(t, res, "federated token", secret)
			}
			mustComplete(t, res)
			msgs, rep := w.read(w.Topic)
			w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
			if w.entra.TokenRequests() == 0 {
				t.Fatal("no token request to Entra ID")
			}
			if l := logLine(res.Stderr, "requesting export"); l == nil || l["auth"] != tc.kind {
				t.Fatalf("credential used: %v", l)
			}
		})
	}
}

// TestAccessTokenBypass: MDE_ACCESS_TOKEN with no AZURE_* setting is sent
// as it is to the Defender API; the binary never talks to Entra ID and
// never prints the token.
func TestAccessTokenBypass(t *testing.T) {
	w := newWorld(t, 600, 2)
	tok := w.fetchToken("https://api.securitycenter.microsoft.com/.default")
	before := w.entra.TokenRequests()
	discoveries := w.entra.DiscoveryRequests()
	res := w.run(merge(noAzure, map[string]string{"MDE_ACCESS_TOKEN": tok}))
	assertNotInOutput(t, res, "access token", tok)
	mustComplete(t, res)
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
	if n := w.entra.TokenRequests(); n != before || w.entra.DiscoveryRequests() != discoveries {
		t.Fatalf("the binary made %d token and %d discovery requests to Entra ID", n-before, w.entra.DiscoveryRequests()-discoveries)
	}
	if n := w.connect.Tunnels()["login.microsoftonline.com"]; n != 0 {
		t.Fatalf("%d tunnels to login.microsoftonline.com", n)
	}
	if len(w.defender.Calls()) != 1 {
		t.Fatalf("%d export calls", len(w.defender.Calls()))
	}
}

// TestManagedIdentityAppService: MDE_AUTH=managed-identity with the App
// Service convention (IDENTITY_ENDPOINT + IDENTITY_HEADER) asks that local
// endpoint for a token for the Defender API resource and uses it.
func TestManagedIdentityAppService(t *testing.T) {
	w := newWorld(t, 600, 2)
	tok := w.fetchToken("https://api.securitycenter.microsoft.com/.default")
	const identityHeader = "e2e-identity-header-9fK3"
	var (
		mu       sync.Mutex
		requests []url.Values
		badAuth  int
	)
	msi := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.Query())
		if r.Header.Get("X-IDENTITY-HEADER") != identityHeader {
			badAuth++
			mu.Unlock()
			http.Error(rw, `{"statusCode":400,"message":"missing X-IDENTITY-HEADER"}`, http.StatusBadRequest)
			return
		}
		mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(map[string]string{
			"access_token": tok,
			"expires_on":   strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
			"resource":     r.URL.Query().Get("resource"),
			"token_type":   "Bearer",
			"client_id":    clientID,
		})
	}))
	t.Cleanup(msi.Close)
	before := w.entra.TokenRequests()

	res := w.run(merge(noAzure, map[string]string{
		"MDE_AUTH":          "managed-identity",
		"IDENTITY_ENDPOINT": msi.URL + "/msi/token",
		"IDENTITY_HEADER":   identityHeader,
	}))
	assertNotInOutput(t, res, "identity header", identityHeader)
	assertNotInOutput(t, res, "access token", tok)
	mustComplete(t, res)
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)

	mu.Lock()
	defer mu.Unlock()
	if len(requests) == 0 || badAuth != 0 {
		t.Fatalf("managed identity endpoint: %d requests, %d without the identity header", len(requests), badAuth)
	}
	if got := requests[0].Get("resource"); got != "https://api.securitycenter.microsoft.com" {
		t.Fatalf("managed identity asked for resource %q", got)
	}
	if n := w.entra.TokenRequests(); n != before {
		t.Fatalf("the binary made %d token requests to Entra ID with managed identity", n-before)
	}
	if l := logLine(res.Stderr, "requesting export"); l == nil || l["auth"] != "managed-identity" {
		t.Fatalf("credential used: %v", l)
	}
}

// TestGCCHigh: AZURE_AUTHORITY_HOST=https://login.microsoftonline.us and
// MDE_API_URL=https://api-gov.securitycenter.microsoft.us (nothing else)
// go to those hosts, ask for the government API's scope, and complete.
func TestGCCHigh(t *testing.T) {
	w := newWorld(t, 600, 2)
	gov := fakes.NewConnectProxy(map[string]string{
		"login.microsoftonline.us":            hostOf(t, w.entra.URL()),
		"api-gov.securitycenter.microsoft.us": hostOf(t, w.defender.URL()),
	})
	t.Cleanup(gov.Close)
	res := w.run(map[string]string{
		"HTTPS_PROXY":          gov.URL(),
		"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us",
		"MDE_API_URL":          "https://api-gov.securitycenter.microsoft.us",
	})
	mustComplete(t, res)
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)

	scopes := w.entra.Scopes()
	if len(scopes) == 0 {
		t.Fatal("no token request")
	}
	for _, s := range scopes {
		// MSAL adds the OIDC scopes (openid offline_access profile).
		var resources []string
		for _, f := range strings.Fields(s) {
			if strings.HasSuffix(f, "/.default") {
				resources = append(resources, f)
			}
		}
		if len(resources) != 1 || resources[0] != "https://api-gov.securitycenter.microsoft.us/.default" {
			t.Fatalf("scope sent to Entra ID: %q", s)
		}
	}
	tunnels := gov.Tunnels()
	if tunnels["login.microsoftonline.us"] == 0 || tunnels["api-gov.securitycenter.microsoft.us"] == 0 {
		t.Fatalf("government hosts not used: %v", tunnels)
	}
	if pub := w.connect.Tunnels(); len(pub) != 0 {
		t.Fatalf("public cloud hosts used: %v", pub)
	}
	for _, h := range w.entra.Hosts() {
		if !strings.HasPrefix(h, "login.microsoftonline.us") {
			t.Fatalf("Entra ID request for host %q", h)
		}
	}
}

// TestTokenRefresh: within one process, a token that is still fresh is
// reused (a SAS refresh refetches the manifest with the cached token), and
// a token that expires within azidentity's five-minute refresh margin is
// replaced by a new one from Entra ID before the next API call.
func TestTokenRefresh(t *testing.T) {
	w := newWorld(t, 800, 2)
	part := w.layout.Parts[0].Name

	// Fresh token (1 h): one token request for two export calls.
	w.blobProx.Inject(part, fakes.Fault{Expired: true})
	res := w.run(nil)
	mustComplete(t, res)
	if w.blobProx.Pending() != 0 {
		t.Fatal("the expired-SAS fault was not hit")
	}
	if calls := len(w.defender.Calls()); calls != 2 {
		t.Fatalf("%d export calls, want 2 (the SAS refresh refetches the manifest)", calls)
	}
	if n := w.entra.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests with a 1-hour token, want 1 (cached)", n)
	}
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)

	// Tokens that live 4 minutes are within the refresh margin: the second
	// export call of the process must come with a new token. A new export,
	// so that the run does not find it unchanged and stop before the blobs.
	w.newGeneration(time.Now())
	w.entra.SetTokenLifetime(4 * time.Minute)
	w.blobProx.Inject(part, fakes.Fault{Expired: true})
	res = w.run(nil)
	mustComplete(t, res)
	if w.blobProx.Pending() != 0 {
		t.Fatal("the expired-SAS fault was not hit")
	}
	if calls := len(w.defender.Calls()); calls != 4 {
		t.Fatalf("%d export calls in all, want 4", calls)
	}
	if n := w.entra.TokenRequests() - 1; n != 2 {
		t.Fatalf("%d token requests in the second process, want 2 (refreshed before the second export call)", n)
	}
	msgs, rep = w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
}
