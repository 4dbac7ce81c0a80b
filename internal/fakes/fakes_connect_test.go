package fakes

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestConnectProxyRoutesPublicHostsToTheFake(t *testing.T) {
	e := NewEntra("tenant", "client", "secret")
	defer e.Close()
	p := NewConnectProxy(map[string]string{"login.microsoftonline.com": e.srv.Listener.Addr().String()})
	defer p.Close()
	proxyURL, _ := url.Parse(p.URL())
	tr := e.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = nil // dial through the proxy, not the fake's router
	tr.Proxy = http.ProxyURL(proxyURL)
	resp, err := (&http.Client{Transport: tr}).Get("https://login.microsoftonline.com/common/discovery/instance?api-version=1.1&authorization_endpoint=https://login.microsoftonline.com/common/oauth2/v2.0/authorize")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "tenant_discovery_endpoint") {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if p.Tunnels()["login.microsoftonline.com"] != 1 {
		t.Fatalf("tunnels %v", p.Tunnels())
	}
	if _, err := (&http.Client{Transport: tr}).Get("https://example.com/"); err == nil {
		t.Fatal("an unrouted host was tunnelled")
	}
	if !strings.Contains(string(e.CertPEM()), "BEGIN CERTIFICATE") {
		t.Fatal("no PEM")
	}
}
