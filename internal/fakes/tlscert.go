package fakes

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"time"
)

// publicAuthorityHosts are the Entra ID hosts the fake Entra (and the fake
// Defender over TLS) answer for, besides 127.0.0.1 and localhost: its
// Client() routes every connection to the fake, so the real SDK defaults
// (login.microsoftonline.com, instance discovery) run unchanged in tests.
var publicAuthorityHosts = []string{
	"login.microsoftonline.com",
	"login.microsoftonline.us",
	"login.chinacloudapi.cn",
	"api.securitycenter.microsoft.com",
	"api-gov.securitycenter.microsoft.us",
}

// selfSigned makes a self-signed certificate valid for 127.0.0.1,
// localhost and publicAuthorityHosts, and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("fakes: generate key: " + err.Error())
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "tvm2kafka fake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              append([]string{"localhost"}, publicAuthorityHosts...),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic("fakes: create certificate: " + err.Error())
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic("fakes: parse certificate: " + err.Error())
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
