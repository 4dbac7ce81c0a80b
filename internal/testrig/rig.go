//go:build integration

package testrig

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Rig describes the services of the test rig, as read from the IT_* environment.
type Rig struct {
	// Brokers is the PLAINTEXT bootstrap list (IT_KAFKA_BROKERS).
	Brokers []string
	// SASLBrokers is the SASL_SSL bootstrap list (IT_KAFKA_SASL_BROKERS).
	SASLBrokers []string
	// CAFile is the PEM file of the CA that signed the SASL_SSL listener's certificate.
	CAFile string
	// ScramUser and ScramPassword authenticate with SCRAM-SHA-512 (and SCRAM-SHA-256).
	ScramUser, ScramPassword string
	// PlainUser and PlainPassword authenticate with SASL/PLAIN.
	PlainUser, PlainPassword string
	// KafkaJars is the directory of the broker and tools jars (console consumer).
	KafkaJars string
	// KafkaScript is the path of scripts/kafka.sh (start/stop for restart tests).
	KafkaScript string
	// AzuriteBlob is the blob service URL of the devstoreaccount1 account,
	// e.g. http://127.0.0.1:10000/devstoreaccount1. Empty when Azurite is not running.
	AzuriteBlob string
	// SchemaRegistry is the Confluent-compatible API of the rig's Schema
	// Registry (Apicurio Registry, scripts/registry.sh), e.g.
	// http://127.0.0.1:28081/apis/ccompat/v7. Empty when it is not running.
	SchemaRegistry string
}

// Registry returns the Schema Registry's URL; the test fails when the rig
// has none (scripts/test.sh always starts it).
func (r Rig) Registry(t testing.TB) string {
	t.Helper()
	if r.SchemaRegistry == "" {
		t.Fatal("testrig: IT_SCHEMA_REGISTRY_URL is not set: start the registry (scripts/registry.sh start) and eval \"$(scripts/registry.sh env)\"")
	}
	return r.SchemaRegistry
}

// Env reads the rig from the environment. It skips the test when
// IT_KAFKA_BROKERS is unset, so `go test -tags integration ./...` without
// services skips instead of failing.
func Env(t testing.TB) Rig {
	t.Helper()
	brokers := os.Getenv("IT_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("IT_KAFKA_BROKERS is not set: run scripts/test.sh, or start the rig and eval \"$(scripts/kafka.sh env)\"")
	}
	return Rig{
		Brokers:        splitList(brokers),
		SASLBrokers:    splitList(os.Getenv("IT_KAFKA_SASL_BROKERS")),
		CAFile:         os.Getenv("IT_KAFKA_CA_FILE"),
		ScramUser:      os.Getenv("IT_KAFKA_SCRAM_USER"),
		ScramPassword:  os.Getenv("IT_KAFKA_SCRAM_PASSWORD"),
		PlainUser:      os.Getenv("IT_KAFKA_PLAIN_USER"),
		PlainPassword:  os.Getenv("IT_KAFKA_PLAIN_PASSWORD"),
		KafkaJars:      os.Getenv("IT_KAFKA_JARS"),
		KafkaScript:    os.Getenv("IT_KAFKA_SCRIPT"),
		AzuriteBlob:    strings.TrimRight(os.Getenv("IT_AZURITE_BLOB"), "/"),
		SchemaRegistry: strings.TrimRight(os.Getenv("IT_SCHEMA_REGISTRY_URL"), "/"),
	}
}

// BrokerList returns the PLAINTEXT brokers comma-separated, as KAFKA_BROKERS takes them.
func (r Rig) BrokerList() string { return strings.Join(r.Brokers, ",") }

// SASLBrokerList returns the SASL_SSL brokers comma-separated.
func (r Rig) SASLBrokerList() string { return strings.Join(r.SASLBrokers, ",") }

// TLSConfig returns a client TLS configuration that trusts the rig's test CA
// (for the SASL_SSL listener). It fails the test when IT_KAFKA_CA_FILE is unset
// or unreadable.
func (r Rig) TLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	if r.CAFile == "" {
		t.Fatal("testrig: IT_KAFKA_CA_FILE is not set")
	}
	pem, err := os.ReadFile(r.CAFile)
	if err != nil {
		t.Fatalf("testrig: read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("testrig: no certificate in %s", r.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// UniqueName returns prefix followed by a sanitised form of the test name and
// a random suffix, using only [a-z0-9-] and at most 63 characters, so it is
// valid as a Kafka topic and as a blob container name.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var b strings.Builder
	for _, c := range strings.ToLower(t.Name()) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	name := strings.Trim(b.String(), "-")
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("testrig: random: %v", err)
	}
	suffix := hex.EncodeToString(rnd[:])
	max := 63 - len(prefix) - len(suffix) - 2
	if len(name) > max {
		name = strings.Trim(name[:max], "-")
	}
	if name == "" {
		return fmt.Sprintf("%s-%s", prefix, suffix)
	}
	return fmt.Sprintf("%s-%s-%s", prefix, name, suffix)
}

// testContext returns a context bounded by d, cancelled
// when the test ends.
func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
