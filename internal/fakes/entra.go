package fakes

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Entra is a fake Entra ID (Azure AD) over TLS. It serves
//
//	GET  /common/discovery/instance                      instance discovery
//	GET  /{tenant}/v2.0/.well-known/openid-configuration OpenID configuration
//	POST /{tenant}/oauth2/v2.0/token                     client credentials
//
// The token endpoint accepts grant_type=client_credentials with the
// configured client_id and either the configured client_secret or a
// client_assertion (any well-formed JWT, for certificate and workload
// identity credentials). Wrong credentials get Entra's own error shapes
// (invalid_client / AADSTS7000215, unauthorized_client / AADSTS700016,
// invalid_request / AADSTS90002 for an unknown tenant).
//
// Tokens are opaque random strings, or, after SignTokens, RS256 JWTs
// signed with a given key, as Entra ID issues them for resources such as
// Azure Event Hubs (what a Kafka broker validating OAUTHBEARER tokens
// checks: signature, audience, issuer, expiry).
//
// Client() trusts the fake's certificate and routes every connection to
// the fake, whatever the host name (login.microsoftonline.com included),
// so azidentity's instance discovery against the public cloud is served
// here too.
type Entra struct {
	srv                        *httptest.Server
	client                     *http.Client
	tenant, clientID, secret   string
	mu                         sync.Mutex
	lifetime                   time.Duration
	tokens                     map[string]time.Time
	tokenRequests, discoveries int
	scopes                     []string
	hosts                      []string
	signKey                    *rsa.PrivateKey // nil: opaque tokens
	kid, issuer                string
}

// SignTokens makes the token endpoint issue RS256 JWTs signed with the RSA
// private key in keyPEM (PKCS#8 or PKCS#1), with kid in their header and
// issuer as their iss claim. The aud claim is the requested scope without
// its "/.default" suffix, as Entra ID does; sub, oid and appid are the
// client ID, tid the tenant.
func (e *Entra) SignTokens(keyPEM []byte, kid, issuer string) error {
	key, err := jwt.ParseRSAPrivateKeyFromPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("fakes: signing key: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.signKey, e.kid, e.issuer = key, kid, issuer
	return nil
}

// signed returns a JWT for scope valid from now for life, or "" when
// tokens are opaque.
func (e *Entra) signed(scope string, now time.Time, life time.Duration) (string, error) {
	e.mu.Lock()
	key, kid, iss := e.signKey, e.kid, e.issuer
	e.mu.Unlock()
	if key == nil {
		return "", nil
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"aud": strings.TrimSuffix(strings.Fields(scope)[0], "/.default"), "iss": iss,
		"sub": e.clientID, "oid": e.clientID, "appid": e.clientID, "tid": e.tenant, "ver": "1.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(life).Unix(),
	})
	tok.Header["kid"] = kid
	return tok.SignedString(key)
}

// NewEntra starts a fake Entra ID for one tenant and one application.
func NewEntra(tenant, clientID, clientSecret string) *Entra {
	e := &Entra{tenant: tenant, clientID: clientID, secret: clientSecret,
		lifetime: time.Hour, tokens: map[string]time.Time{}}
	cert, pool := selfSigned()
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	e.srv.StartTLS()
	e.client = routedClient(e.srv.Listener.Addr().String(), pool)
	return e
}

// routedClient returns a client that trusts pool and dials addr for every host.
func routedClient(addr string, pool *x509.CertPool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 16,
	}
	if pool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// URL is the fake's base URL (https://127.0.0.1:port), usable as
// AZURE_AUTHORITY_HOST.
func (e *Entra) URL() string { return e.srv.URL }

// Client returns an HTTP client that trusts the fake and routes every
// request to it.
func (e *Entra) Client() *http.Client { return e.client }

// Close stops the server.
func (e *Entra) Close() { e.srv.Close() }

// SetTokenLifetime sets expires_in of tokens issued from now on. A lifetime
// under five minutes makes azidentity/MSAL fetch a new token on every call.
func (e *Entra) SetTokenLifetime(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lifetime = d
}

// TokenRequests counts POSTs to the token endpoint (successful or not).
func (e *Entra) TokenRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokenRequests
}

// DiscoveryRequests counts instance discovery requests.
func (e *Entra) DiscoveryRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.discoveries
}

// Scopes returns the scope parameter of every token request.
func (e *Entra) Scopes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.scopes...)
}

// Hosts returns the Host header of every request served, in order.
func (e *Entra) Hosts() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.hosts...)
}

// ValidToken reports whether tok was issued by this fake and has not expired.
func (e *Entra) ValidToken(tok string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.tokens[tok]
	return ok && time.Now().Before(exp)
}

func (e *Entra) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.hosts = append(e.hosts, r.Host)
	e.mu.Unlock()
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/common/discovery/instance":
		e.discovery(w, r)
	case r.Method == http.MethodGet && len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
		e.openID(w, r, segs[0])
	case r.Method == http.MethodPost && len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
		e.token(w, r, segs[0])
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "not_found", "error_description": "fake Entra: no route " + r.Method + " " + r.URL.Path})
	}
}

func (e *Entra) discovery(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.discoveries++
	e.mu.Unlock()
	// authorization_endpoint=https://{host}/{tenant}/oauth2/v2.0/authorize
	host, tenant := r.Host, e.tenant
	if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" {
		rest := strings.TrimPrefix(strings.TrimPrefix(ae, "https://"), "http://")
		parts := strings.Split(rest, "/")
		if len(parts) >= 2 {
			host, tenant = parts[0], parts[1]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

func (e *Entra) openID(w http.ResponseWriter, r *http.Request, tenant string) {
	if tenant != e.tenant && tenant != "organizations" && tenant != "common" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + tenant + "' not found."})
		return
	}
	base := "https://" + r.Host + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"tenant_region_scope":                   "EU",
	})
}

func (e *Entra) token(w http.ResponseWriter, r *http.Request, tenant string) {
	e.mu.Lock()
	e.tokenRequests++
	e.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	e.mu.Lock()
	e.scopes = append(e.scopes, f.Get("scope"))
	e.mu.Unlock()
	switch {
	case tenant != e.tenant:
		entraError(w, http.StatusBadRequest, "invalid_request", 90002, "AADSTS90002: Tenant '"+tenant+"' not found. Check to make sure you have the correct tenant ID.")
		return
	case f.Get("grant_type") != "client_credentials":
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "AADSTS70003: The app requested an unsupported grant type.")
		return
	case f.Get("client_id") != e.clientID:
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, "AADSTS700016: Application with identifier was not found in the directory.")
		return
	case f.Get("client_secret") != "":
		if f.Get("client_secret") != e.secret {
			entraError(w, http.StatusUnauthorized, "invalid_client", 7000215, "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
			return
		}
	case f.Get("client_assertion") != "":
		if !wellFormedJWT(f.Get("client_assertion")) {
			entraError(w, http.StatusUnauthorized, "invalid_client", 700027, "AADSTS700027: Client assertion failed signature validation.")
			return
		}
	default:
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if f.Get("scope") == "" {
		entraError(w, http.StatusBadRequest, "invalid_scope", 1002012, "AADSTS1002012: The provided value for scope is not valid.")
		return
	}
	e.mu.Lock()
	life := e.lifetime
	e.mu.Unlock()
	now := time.Now()
	tok, err := e.signed(f.Get("scope"), now, life)
	if err != nil {
		entraError(w, http.StatusInternalServerError, "server_error", 500, "fake Entra: signing: "+err.Error())
		return
	}
	if tok == "" {
		tok = randomToken()
	}
	e.mu.Lock()
	e.tokens[tok] = now.Add(life)
	e.mu.Unlock()
	secs := int(life / time.Second)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok,
	})
}

func entraError(w http.ResponseWriter, status int, code string, num int, desc string) {
	writeJSON(w, status, map[string]any{
		"error": code, "error_description": desc + "\r\nTrace ID: 00000000-0000-0000-0000-000000000000",
		"error_codes": []int{num}, "timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id": "00000000-0000-0000-0000-000000000000", "correlation_id": "00000000-0000-0000-0000-000000000000",
	})
}

func wellFormedJWT(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var m map[string]any
	return json.Unmarshal(payload, &m) == nil
}

func randomToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("fakes: random: %v", err))
	}
	return "fake." + base64.RawURLEncoding.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
