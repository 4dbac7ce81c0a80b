package fakes

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestEntraSignsTokensForTheScope(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEntra("tenant-1", "client-1", "secret-1")
	defer e.Close()
	if err := e.SignTokens([]byte("not a key"), "k", "iss"); err == nil {
		t.Fatal("a bad key was accepted")
	}
	if err := e.SignTokens(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "kid-1", "https://sts.windows.net/tenant-1/"); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Client().PostForm(e.URL()+"/tenant-1/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"client-1"}, "client_secret": {"secret-1"},
		"scope": {"https://ns.servicebus.windows.net/.default openid offline_access profile"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	tok, err := jwt.Parse(body.AccessToken, func(tk *jwt.Token) (any, error) {
		if tk.Header["kid"] != "kid-1" {
			t.Errorf("kid %v", tk.Header["kid"])
		}
		return &key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience("https://ns.servicebus.windows.net"),
		jwt.WithIssuer("https://sts.windows.net/tenant-1/"), jwt.WithIssuedAt(), jwt.WithLeeway(time.Second))
	if err != nil || !tok.Valid {
		t.Fatalf("token does not verify: %v", err)
	}
	if sub, _ := tok.Claims.GetSubject(); sub != "client-1" {
		t.Errorf("sub %q", sub)
	}
	if !e.ValidToken(body.AccessToken) || strings.Count(body.AccessToken, ".") != 2 {
		t.Error("the signed token is not recorded as issued")
	}
}
