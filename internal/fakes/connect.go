package fakes

import (
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
)

// CertPEM is the PEM of the fake's self-signed certificate (its own CA):
// a separate process trusts it through SSL_CERT_FILE.
func (e *Entra) CertPEM() []byte { return certPEM(e.srv) }

// CertPEM is the PEM of the fake's certificate; nil without TLS.
func (d *Defender) CertPEM() []byte {
	if d.srv.TLS == nil {
		return nil
	}
	return certPEM(d.srv)
}

func certPEM(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// ConnectProxy is a forward proxy for HTTPS_PROXY: it answers CONNECT
// host:port by tunnelling to the address routed for that host name, so a
// separate process using the real public host names
// (login.microsoftonline.com, api.securitycenter.microsoft.com) reaches
// the fakes — and proves it honours HTTPS_PROXY. Unrouted hosts get 403.
type ConnectProxy struct {
	srv    *httptest.Server
	routes map[string]string

	mu      sync.Mutex
	tunnels map[string]int
}

// NewConnectProxy starts a proxy routing each host name (without port)
// to an address host:port.
func NewConnectProxy(routes map[string]string) *ConnectProxy {
	p := &ConnectProxy{routes: routes, tunnels: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

// URL is the proxy's address, for HTTPS_PROXY.
func (p *ConnectProxy) URL() string { return p.srv.URL }

// Close stops the proxy.
func (p *ConnectProxy) Close() { p.srv.Close() }

// Tunnels returns how many tunnels were opened per host name.
func (p *ConnectProxy) Tunnels() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.tunnels))
	for k, v := range p.tunnels {
		out[k] = v
	}
	return out
}

func (p *ConnectProxy) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "only CONNECT", http.StatusMethodNotAllowed)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	addr, ok := p.routes[host]
	if !ok {
		http.Error(w, "no route for "+host, http.StatusForbidden)
		return
	}
	upstream, err := net.Dial("tcp", addr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "no hijacking", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		upstream.Close()
		client.Close()
		return
	}
	p.mu.Lock()
	p.tunnels[host]++
	p.mu.Unlock()
	go func() {
		defer upstream.Close()
		defer client.Close()
		if n := buf.Reader.Buffered(); n > 0 {
			b, _ := buf.Reader.Peek(n)
			if _, err := upstream.Write(b); err != nil {
				return
			}
		}
		done := make(chan struct{})
		go func() { io.Copy(client, upstream); close(done) }()
		io.Copy(upstream, client)
		upstream.(*net.TCPConn).CloseWrite()
		<-done
	}()
}
