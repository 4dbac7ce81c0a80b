package wire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/youmark/pkcs8"
)

// clientKeyFiles writes a self-signed client certificate and its key: in
// the clear, as encrypted PKCS#8 and with legacy PEM encryption.
func clientKeyFiles(t *testing.T, password string) (cert, plain, pkcs8File, legacy string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tvm2kafka"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b *pem.Block) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := pkcs8.MarshalPrivateKey(key, []byte(password), nil)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the legacy format is what some users have; the test makes one
	old, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", ec, []byte(password), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	return write("cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: der}),
		write("key.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		write("key-pkcs8.pem", &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc}),
		write("key-legacy.pem", old)
}

func TestEncryptedClientKey(t *testing.T) {
	const password = "key-passw0rd"
	cert, plain, p8, legacy := clientKeyFiles(t, password)
	for _, tc := range []struct {
		name, key, password, wantErr string
	}{
		{"plain", plain, "", ""},
		{"PKCS#8 encrypted", p8, password, ""},
		{"legacy PEM encrypted", legacy, password, ""},
		{"PKCS#8 wrong password", p8, "wrong-one", "KAFKA_TLS_KEY_PASSWORD: wrong password"},
		{"legacy wrong password", legacy, "wrong-one", "KAFKA_TLS_KEY_PASSWORD: wrong password"},
		{"encrypted without password", p8, "", "set KAFKA_TLS_KEY_PASSWORD"},
		{"password for a plain key", plain, password, "KAFKA_TLS_KEY_PASSWORD: set, but KAFKA_TLS_KEY_FILE is not encrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(nil)
			c.Brokers = []string{"127.0.0.1:9093"}
			c.TLS, c.TLSCertFile, c.TLSKeyFile, c.TLSKeyPassword = true, cert, tc.key, tc.password
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc, _ := c.tlsConfig()
				if len(tc.Certificates) != 1 {
					t.Fatal("no client certificate")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("the password is in the error: %v", err)
			}
		})
	}
	// The decrypted key works in a real TLS handshake that asks for it.
	c := testConfig(nil)
	c.TLS, c.TLSCertFile, c.TLSKeyFile, c.TLSKeyPassword = true, cert, p8, password
	clientTLS, err := c.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, plain)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if tc.Handshake() != nil {
			got <- -1
			return
		}
		got <- len(tc.ConnectionState().PeerCertificates)
	}()
	clientTLS.InsecureSkipVerify = true // the server's certificate is not what is tested
	conn, err := tls.Dial("tcp", ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if n := <-got; n != 1 {
		t.Fatalf("the server saw %d client certificates", n)
	}
}

// Topics tvm2kafka creates get KAFKA_TOPIC_CONFIG; an existing one is left
// as it is.
func TestCreatedTopicGetsItsConfig(t *testing.T) {
	c := newCluster(t)
	k := newTestKafka(t, c, func(cfg *Config) {
		cfg.TopicConfig = map[string]string{"retention.ms": "3600000", "cleanup.policy": "compact"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, created, err := k.EnsureTopic(ctx, "configured", 2, -1); err != nil || !created {
		t.Fatalf("created %v, %v", created, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rc, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, "configured")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rc {
		for _, cfg := range r.Configs {
			if cfg.Value != nil {
				got[cfg.Key] = *cfg.Value
			}
		}
	}
	if got["retention.ms"] != "3600000" || got["cleanup.policy"] != "compact" {
		t.Fatalf("topic configs %v", got)
	}
}
