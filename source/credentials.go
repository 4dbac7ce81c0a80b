package source

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/tvm2kafka/tvm2kafka/internal/names"
	"github.com/tvm2kafka/tvm2kafka/internal/redact"
)

// DefaultTokenScope is the OAuth scope of the Defender API (MDE_TOKEN_SCOPE).
const DefaultTokenScope = "https://api.securitycenter.microsoft.com/.default"

// TokenSource yields bearer tokens for the Defender API.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// TokenSourceFunc adapts a function to TokenSource.
type TokenSourceFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenSourceFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// CredentialKind names a credential. NewTokenSource builds the one its
// config names and reads only that credential's fields.
type CredentialKind string

// Credential kinds.
const (
	// KindAccessToken is a static bearer token (AccessToken); Entra ID is skipped.
	KindAccessToken CredentialKind = "access-token"
	// KindClientSecret is the client-credentials flow (TenantID, ClientID, ClientSecret).
	KindClientSecret CredentialKind = "client-secret"
	// KindCertificate is a client certificate (TenantID, ClientID, CertificatePath, CertificatePassword).
	KindCertificate CredentialKind = "client-certificate"
	// KindWorkloadIdentity is workload identity (TenantID, ClientID, FederatedTokenFile).
	KindWorkloadIdentity CredentialKind = "workload-identity"
	// KindManagedIdentity is the managed identity of the host (ClientID for a user-assigned one).
	KindManagedIdentity CredentialKind = "managed-identity"
)

// CredentialConfig configures a credential of kind Kind.
type CredentialConfig struct {
	Kind                                 CredentialKind
	TenantID, ClientID, ClientSecret     string
	CertificatePath, CertificatePassword string
	// FederatedTokenFile is workload identity's token file.
	FederatedTokenFile string
	// AuthorityHost: "" = public cloud (login.microsoftonline.com), e.g.
	// https://login.microsoftonline.us for GCC High / DoD.
	AuthorityHost string
	// AccessToken is a static bearer token; Entra ID is skipped.
	AccessToken string
	// Scope of the Defender API's tokens; "" = DefaultTokenScope.
	Scope string
	// HTTPClient is azidentity's transport; nil = azcore's default
	// transport, which honours HTTPS_PROXY / NO_PROXY.
	HTTPClient *http.Client
	// Names names the settings behind the fields ("source.TenantID", …)
	// in errors; nil names the fields.
	Names names.Func
}

// AuthError is a failure to obtain a token. Its message names the
// credential problem and never contains a secret or token.
type AuthError struct {
	Kind CredentialKind
	Err  error // the SDK's error (may hold the raw Entra ID response)
	msg  string
}

func (e *AuthError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return "authentication (" + string(e.Kind) + ") failed: " + redact.String(e.Err.Error())
}

func (e *AuthError) Unwrap() error { return e.Err }

// credentialNeeds names, per kind, the settings that must be set, with
// the field holding each.
func credentialNeeds(cfg CredentialConfig) []struct{ env, val string } {
	n := cfg.Names.Of
	type need = struct{ env, val string }
	app := []need{{n("source.TenantID"), cfg.TenantID}, {n("source.ClientID"), cfg.ClientID}}
	switch cfg.Kind {
	case KindAccessToken:
		return []need{{n("source.AccessToken"), cfg.AccessToken}}
	case KindClientSecret:
		return append(app, need{n("source.ClientSecret"), cfg.ClientSecret})
	case KindCertificate:
		return append(app, need{n("source.CertificatePath"), cfg.CertificatePath})
	case KindWorkloadIdentity:
		return append(app, need{n("source.FederatedTokenFile"), cfg.FederatedTokenFile})
	}
	return nil
}

// NewTokenSource builds the credential that cfg.Kind names, from that
// credential's fields only (managed identity: ClientID as the
// user-assigned identity when set). A setting the kind needs that is
// not set is an error naming it. It makes no network call.
func NewTokenSource(cfg CredentialConfig) (ts TokenSource, kind CredentialKind, err error) {
	kind = cfg.Kind
	switch kind {
	case KindAccessToken, KindClientSecret, KindCertificate, KindWorkloadIdentity, KindManagedIdentity:
	case "":
		return nil, "", errors.New("credential: no kind chosen")
	default:
		return nil, "", fmt.Errorf("credential: unknown kind %q", kind)
	}
	var missing []string
	for _, need := range credentialNeeds(cfg) {
		if need.val == "" {
			missing = append(missing, need.env)
		}
	}
	if len(missing) > 0 {
		return nil, "", fmt.Errorf("%s credential: %s not set", kind, strings.Join(missing, " and "))
	}
	scope := cfg.Scope
	if scope == "" {
		scope = DefaultTokenScope
	}
	if kind == KindAccessToken {
		return staticToken{token: cfg.AccessToken, name: cfg.Names.Of("source.AccessToken")}, kind, nil
	}
	opts := azcore.ClientOptions{Cloud: cloud.AzurePublic}
	if cfg.AuthorityHost != "" {
		host := cfg.AuthorityHost
		if !strings.HasPrefix(host, "https://") {
			return nil, "", fmt.Errorf("%s %q: must be an https:// URL", cfg.Names.Of("source.AuthorityHost"), host)
		}
		if !strings.HasSuffix(host, "/") {
			host += "/"
		}
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: host}
	}
	if cfg.HTTPClient != nil {
		opts.Transport = cfg.HTTPClient
	}
	// azcore's retry policy, except that a host name that does not exist
	// fails at once.
	opts.Retry.ShouldRetry = func(resp *http.Response, err error) bool {
		if err != nil {
			_, typo := NoSuchHost(err)
			return !typo
		}
		switch resp.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var cred azcore.TokenCredential
	secret := ""
	switch kind {
	case KindClientSecret:
		secret = cfg.ClientSecret
		cred, err = azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts})
	case KindCertificate:
		certs, key, cerr := loadCertificate(cfg.CertificatePath, cfg.CertificatePassword, cfg.Names)
		if cerr != nil {
			return nil, "", cerr
		}
		cred, err = azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts})
		if err != nil {
			return nil, "", fmt.Errorf("%s %s: %s", cfg.Names.Of("source.CertificatePath"), cfg.CertificatePath, redact.New(cfg.CertificatePassword).String(err.Error()))
		}
	case KindWorkloadIdentity:
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, ClientID: cfg.ClientID, TenantID: cfg.TenantID, TokenFilePath: cfg.FederatedTokenFile})
	case KindManagedIdentity:
		mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if cfg.ClientID != "" {
			mo.ID = azidentity.ClientID(cfg.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(mo)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s credential: %s", kind, redact.New(secret).String(err.Error()))
	}
	return &azTokenSource{cred: cred, scope: scope, scopeVar: cfg.Names.Of("source.Scope"), kind: kind, secret: secret, names: cfg.Names}, kind, nil
}

// ExpiringTokenSource yields bearer tokens with the time they expire.
type ExpiringTokenSource interface {
	TokenExpiry(ctx context.Context) (token string, expiresOn time.Time, err error)
}

// ForScope returns a token source for another scope on the same Entra ID
// credential as ts (a source from NewTokenSource), e.g. for Kafka's
// OAUTHBEARER. scopeVar names the setting of that scope in errors. A
// static access token has no other scope: that is an error.
func ForScope(ts TokenSource, scope, scopeVar string) (ExpiringTokenSource, error) {
	az, ok := ts.(*azTokenSource)
	if !ok {
		name := "the access token"
		if st, ok := ts.(staticToken); ok {
			name = st.name
		}
		return nil, fmt.Errorf("%s: %s is a token for the Defender API only; another scope needs an Entra ID credential", scopeVar, name)
	}
	return &azTokenSource{cred: az.cred, scope: scope, scopeVar: scopeVar, kind: az.kind, secret: az.secret, names: az.names}, nil
}

// staticToken is a bearer token obtained elsewhere; name is its setting.
type staticToken struct{ token, name string }

// Token implements TokenSource.
func (t staticToken) Token(context.Context) (string, error) { return t.token, nil }

// loadCertificate reads a PEM or PKCS#12 certificate with its private key.
// Its errors name the setting to fix and never hold the password.
func loadCertificate(path, password string, names names.Func) ([]*x509.Certificate, crypto.PrivateKey, error) {
	certVar, pwVar := names.Of("source.CertificatePath"), names.Of("source.CertificatePassword")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", certVar, err)
	}
	certs, key, err := azidentity.ParseCertificates(data, []byte(password))
	if err == nil {
		return certs, key, nil
	}
	msg := redact.New(password).String(err.Error())
	switch {
	case strings.Contains(msg, "decryption password incorrect") && password == "":
		return nil, nil, fmt.Errorf("%s: %s is a password-protected PKCS#12 file and no password is set", pwVar, path)
	case strings.Contains(msg, "decryption password incorrect"):
		return nil, nil, fmt.Errorf("%s: wrong password for the PKCS#12 file %s (%s)", pwVar, path, certVar)
	case strings.Contains(msg, "unknown digest algorithm"):
		return nil, nil, fmt.Errorf("%s %s: a PKCS#12 file with SHA-256 integrity, which cannot be read: export it with `openssl pkcs12 -export -legacy`, or use the PEM certificate and key in one file (%s)", certVar, path, msg)
	case strings.Contains(msg, "no private key"):
		return nil, nil, fmt.Errorf("%s %s: holds a certificate but no private key; put the unencrypted PEM key in the same file, or use a PKCS#12 file", certVar, path)
	}
	return nil, nil, fmt.Errorf("%s %s: not a PEM or PKCS#12 certificate with its private key (%s)", certVar, path, truncate(msg, 200))
}

// azTokenSource asks an azidentity credential for tokens; azidentity
// caches them and refreshes them before they expire.
type azTokenSource struct {
	cred     azcore.TokenCredential
	scope    string
	scopeVar string // the setting of scope, for errors
	kind     CredentialKind
	secret   string
	names    names.Func
}

func (s *azTokenSource) Token(ctx context.Context) (string, error) {
	tok, _, err := s.TokenExpiry(ctx)
	return tok, err
}

func (s *azTokenSource) TokenExpiry(ctx context.Context) (string, time.Time, error) {
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.scope}})
	if err != nil {
		return "", time.Time{}, newAuthError(s.kind, s.secret, s.scopeVar, s.names, err)
	}
	return tok.Token, tok.ExpiresOn, nil
}

var reAADSTS = regexp.MustCompile(`AADSTS\d+`)

// credentialVars names the settings to check for a credential kind.
func credentialVars(kind CredentialKind, n names.Func) string {
	app := n.Of("source.TenantID") + "/" + n.Of("source.ClientID") + "/"
	switch kind {
	case KindClientSecret:
		return app + n.Of("source.ClientSecret")
	case KindCertificate:
		return app + n.Of("source.CertificatePath")
	case KindWorkloadIdentity:
		return app + n.Of("source.FederatedTokenFile")
	case KindManagedIdentity:
		return "the managed identity (" + n.Of("source.ClientID") + " for a user-assigned one)"
	}
	return ""
}

func newAuthError(kind CredentialKind, secret, scopeVar string, n names.Func, err error) *AuthError {
	ae := &AuthError{Kind: kind, Err: err}
	vars := credentialVars(kind, n)
	authority, tenant, client := n.Of("source.AuthorityHost"), n.Of("source.TenantID"), n.Of("source.ClientID")
	if host, ok := NoSuchHost(err); ok {
		ae.msg = fmt.Sprintf("authentication (%s): the Entra ID host %s does not exist (DNS: no such host): check %s", kind, host, authority)
		return ae
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) && afe.RawResponse != nil {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if p, rerr := readBody(afe.RawResponse); rerr == nil {
			_ = json.Unmarshal(p, &body)
		}
		code := body.Error
		if c := reAADSTS.FindString(body.Description); c != "" {
			code += ", " + c
		}
		status := afe.RawResponse.StatusCode
		switch body.Error {
		case "invalid_client":
			ae.msg = fmt.Sprintf("Entra ID rejected the client credentials (%s): check %s", code, vars)
		case "unauthorized_client":
			ae.msg = fmt.Sprintf("Entra ID does not know the application (%s): check %s and %s", code, client, tenant)
		case "invalid_tenant":
			ae.msg = fmt.Sprintf("Entra ID does not know the tenant (%s): check %s and %s", code, tenant, authority)
		case "invalid_scope":
			ae.msg = fmt.Sprintf("Entra ID rejected the token scope (%s): check %s", code, scopeVar)
		case "invalid_request":
			if strings.Contains(body.Description, "AADSTS90002") {
				ae.msg = fmt.Sprintf("Entra ID does not know the tenant (%s): check %s and %s", code, tenant, authority)
			} else {
				ae.msg = fmt.Sprintf("Entra ID refused the token request (%s): check %s", code, vars)
			}
		default:
			if code == "" {
				code = "no error code"
			}
			ae.msg = fmt.Sprintf("Entra ID token request failed with HTTP %d (%s): check %s and %s", status, code, vars, authority)
		}
		ae.msg = "authentication (" + string(kind) + "): " + ae.msg
		return ae
	}
	detail := truncate(strings.ReplaceAll(redact.New(secret).String(err.Error()), "\n", " "), 400)
	ae.msg = "authentication (" + string(kind) + ") failed: " + detail + " (check " + vars + " and " + authority + ")"
	return ae
}

func readBody(resp *http.Response) ([]byte, error) {
	if resp.Body == nil {
		return nil, errors.New("no body")
	}
	return runtime.Payload(resp)
}
