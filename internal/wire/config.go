package wire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/tvm2kafka/tvm2kafka/internal/names"
	"github.com/youmark/pkcs8"
)

// The tuning of a Config that is not a setting: used where a field is 0.
const (
	DefaultBatchBytes   = 1_000_000
	DefaultBatchTimeout = 5 * time.Millisecond
	DefaultWriteTimeout = 30 * time.Second
	DefaultDialTimeout  = 10 * time.Second
)

// Bounds of Config.MaxMessageBytes. The upper bound keeps the memory of a
// run bounded: every worker may hold up to two batches with a line of that
// size.
const (
	MinMaxMessageBytes = 1024
	MaxMaxMessageBytes = 64 << 20
)

// SASL mechanisms accepted by Config.SASLMechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLOAuthBearer = "OAUTHBEARER"
)

// Config is the Kafka side of tvm2kafka. It holds values, not the defaults
// of settings: the program gives every field its value (the tuning fields
// left 0 take the Default constants above).
type Config struct {
	// Brokers are host:port bootstrap addresses.
	Brokers []string
	// Topic receives records and markers.
	Topic string
	// DLQTopic receives rejected lines when set.
	DLQTopic string
	// TableTopic is the compacted table topic, when set.
	TableTopic string
	// Compression is none (or ""), gzip, snappy, lz4 or zstd.
	Compression string

	// SASLMechanism is empty, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or
	// OAUTHBEARER (case-insensitive); SASLUsername and SASLPassword are
	// required with the first three and refused with OAUTHBEARER. The
	// password never appears in logs or errors.
	SASLMechanism, SASLUsername, SASLPassword string
	// OAuthToken yields the OAUTHBEARER tokens (required with it: the
	// Entra ID credential); OAuthScope, their scope, is named in errors.
	OAuthToken OAuthToken
	OAuthScope string

	// TLS turns TLS on. TLSCAFile is a PEM bundle of CAs to trust instead
	// of the system pool; TLSCertFile and TLSKeyFile a client certificate
	// for mutual TLS.
	TLS                                bool
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// TLSKeyPassword decrypts an encrypted TLSKeyFile: PKCS#8 ("ENCRYPTED
	// PRIVATE KEY") or legacy PEM encryption ("Proc-Type: 4,ENCRYPTED").
	TLSKeyPassword string
	// TLSConfig, when set, is the TLS configuration itself (TLS on; the
	// files above are not read): for programs that build their own.
	TLSConfig *tls.Config

	// TopicPartitions is the partition count of a topic this program
	// creates (0: this Kafka creates none). An existing topic is used with
	// the partition count it has.
	TopicPartitions int
	// TopicReplicationFactor of a created topic, -1 = the broker's
	// default.replication.factor.
	TopicReplicationFactor int
	// TopicConfig holds the topic configs (retention.ms, …) of a topic this
	// program creates; an existing topic keeps its own.
	TopicConfig map[string]string

	// MaxMessageBytes bounds one record: its key, value and headers (names
	// and values) together (0: this Kafka only reads); a line whose record
	// would be larger is rejected, and a line longer than that is rejected
	// without being buffered.
	MaxMessageBytes int

	// BatchBytes and BatchTimeout are the per-partition batching: a
	// partition's batch is sent when it holds BatchBytes of records
	// (DefaultBatchBytes is under Azure Event Hubs' 1 MB request limit;
	// raised to MaxMessageBytes when smaller) or when its first record is
	// BatchTimeout old and no request of the partition is in flight.
	BatchBytes   int64
	BatchTimeout time.Duration

	// WriteTimeout bounds one produce request, DialTimeout one connection
	// attempt.
	WriteTimeout, DialTimeout time.Duration
	// Dial opens connections to the brokers; nil = a net.Dialer with
	// DialTimeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// RetryMaxElapsed bounds the retries of a failed write or marker,
	// counted from its last progress.
	RetryMaxElapsed time.Duration

	// Names names the settings behind the fields ("wire.Brokers", …) in
	// messages that tell an operator what to change; nil names the fields.
	Names names.Func
}

// name is the name of the setting behind the field key names.
func (c Config) name(key string) string { return c.Names.Of("wire." + key) }

// withTuning fills the tuning fields left 0.
func (c Config) withTuning() Config {
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	return c
}

// Validate checks the configuration without any network call. Every error
// names the setting to fix (Names). MaxMessageBytes, TopicPartitions and
// RetryMaxElapsed are checked when set: a Kafka that only reads needs none.
func (c Config) Validate() error {
	c = c.withTuning()
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{c.name(key)}, a...)...))
	}
	topic, dlq := c.name("Topic"), c.name("DLQTopic")
	mechName, user, pass, tlsName := c.name("SASLMechanism"), c.name("SASLUsername"), c.name("SASLPassword"), c.name("TLS")

	if len(c.Brokers) == 0 {
		bad("Brokers", "at least one broker host:port is required")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			bad("Brokers", "%q is not host:port", b)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			bad("Brokers", "%q has an invalid port", b)
		}
	}
	if err := validTopic(c.Topic); err != nil {
		bad("Topic", "%w", err)
	}
	if c.DLQTopic != "" {
		if err := validTopic(c.DLQTopic); err != nil {
			bad("DLQTopic", "%w", err)
		} else if c.DLQTopic == c.Topic {
			bad("DLQTopic", "must differ from %s", topic)
		}
	}
	if c.TableTopic != "" {
		if err := validTopic(c.TableTopic); err != nil {
			bad("TableTopic", "%w", err)
		} else if c.TableTopic == c.Topic || c.TableTopic == c.DLQTopic {
			bad("TableTopic", "must differ from %s and %s", topic, dlq)
		}
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		bad("Compression", "%w", err)
	}

	mech := strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
	switch mech {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" {
			bad("SASLMechanism", "required when %s or %s is set (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", user, pass)
		}
	case SASLOAuthBearer:
		if c.SASLUsername != "" || c.SASLPassword != "" {
			errs = append(errs, fmt.Errorf("%s / %s: not used with %s=OAUTHBEARER (the token comes from the Entra ID credential): remove them", user, pass, mechName))
		}
		if !c.TLS && !loopbackOnly(c.Brokers) {
			bad("TLS", "OAUTHBEARER sends a bearer token, so TLS is required unless every broker is a loopback address")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUsername == "" {
			bad("SASLUsername", "required with %s=%s", mechName, mech)
		}
		if c.SASLPassword == "" {
			bad("SASLPassword", "required with %s=%s", mechName, mech)
		}
		if c.SASLUsername != "" && c.SASLPassword != "" {
			if _, err := c.saslMechanism(); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		bad("SASLMechanism", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER", c.SASLMechanism)
	}

	if !c.TLS && c.TLSConfig == nil {
		for _, f := range []struct{ key, val string }{
			{"TLSCAFile", c.TLSCAFile}, {"TLSCertFile", c.TLSCertFile}, {"TLSKeyFile", c.TLSKeyFile}, {"TLSKeyPassword", c.TLSKeyPassword},
		} {
			if f.val != "" {
				bad(f.key, "set but %s is off (set %s=true)", tlsName, tlsName)
			}
		}
	} else if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
	}

	if c.TopicPartitions < 0 {
		bad("TopicPartitions", "must be at least 1, got %d", c.TopicPartitions)
	}
	if c.TopicReplicationFactor != -1 && c.TopicReplicationFactor < 1 && c.TopicPartitions > 0 {
		bad("TopicReplicationFactor", "must be -1 (broker default) or at least 1, got %d", c.TopicReplicationFactor)
	}
	for k, v := range c.TopicConfig {
		if k == "" || v == "" {
			bad("TopicConfig", "%q=%q is not key=value", k, v)
		}
	}
	if c.MaxMessageBytes != 0 && (c.MaxMessageBytes < MinMaxMessageBytes || c.MaxMessageBytes > MaxMaxMessageBytes) {
		bad("MaxMessageBytes", "%d is out of range %d..%d", c.MaxMessageBytes, MinMaxMessageBytes, MaxMaxMessageBytes)
	}
	if c.RetryMaxElapsed < 0 {
		bad("RetryMaxElapsed", "must be positive, got %s", c.RetryMaxElapsed)
	}
	return errors.Join(errs...)
}

// validTopic applies Kafka's topic name rules.
func validTopic(t string) error {
	if t == "" {
		return errors.New("topic name is empty")
	}
	if t == "." || t == ".." {
		return fmt.Errorf("topic name %q is not allowed", t)
	}
	if len(t) > 249 {
		return errors.New("topic name is longer than 249 characters")
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q may only contain ASCII letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}

func compressionCodec(name string) (kafka.Compression, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "none", "":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("%q is not one of none, gzip, snappy, lz4, zstd", name)
}

// LoadTLS builds the TLS configuration of c (nil when TLS is off),
// reading its CA and key pair files.
func (c Config) LoadTLS() (*tls.Config, error) { return c.tlsConfig() }

// tlsConfig builds the TLS configuration (nil when TLS is off), reading the
// CA and key pair files. Errors name the variable and never a file's content.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSConfig != nil {
		return c.TLSConfig, nil
	}
	if !c.TLS {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name("TLSCAFile"), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", c.name("TLSCAFile"), c.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return nil, fmt.Errorf("%s: required with %s", c.name("TLSKeyFile"), c.name("TLSCertFile"))
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		return nil, fmt.Errorf("%s: required with %s", c.name("TLSCertFile"), c.name("TLSKeyFile"))
	case c.TLSCertFile != "":
		for _, f := range []struct{ key, path string }{{"TLSCertFile", c.TLSCertFile}, {"TLSKeyFile", c.TLSKeyFile}} {
			if _, err := os.Stat(f.path); err != nil {
				return nil, fmt.Errorf("%s: %w", c.name(f.key), err)
			}
		}
		certPEM, err := os.ReadFile(c.TLSCertFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name("TLSCertFile"), err)
		}
		keyPEM, err := os.ReadFile(c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name("TLSKeyFile"), err)
		}
		if keyPEM, err = c.decryptKey(keyPEM); err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// crypto/tls errors describe the PEM structure, never key bytes.
			return nil, fmt.Errorf("%s / %s: %w", c.name("TLSCertFile"), c.name("TLSKeyFile"), err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case c.TLSKeyPassword != "":
		return nil, fmt.Errorf("%s: set but there is no %s", c.name("TLSKeyPassword"), c.name("TLSKeyFile"))
	}
	return cfg, nil
}

// decryptKey returns the PEM private key of keyPEM, decrypted with
// password when it is encrypted. Errors name the setting to fix.
func (c Config) decryptKey(keyPEM []byte) ([]byte, error) {
	password := c.TLSKeyPassword
	pw, file := c.name("TLSKeyPassword"), c.name("TLSKeyFile")
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return keyPEM, nil // tls.X509KeyPair says what is wrong with it
	}
	//lint:ignore SA1019 legacy PEM encryption is insecure as a format, but keys in it exist and are only read here
	legacy := x509.IsEncryptedPEMBlock(block)
	encrypted := legacy || block.Type == "ENCRYPTED PRIVATE KEY"
	switch {
	case !encrypted && password != "":
		return nil, fmt.Errorf("%s: set, but %s is not encrypted: remove the password", pw, file)
	case !encrypted:
		return keyPEM, nil
	case password == "":
		return nil, fmt.Errorf("%s: the key is encrypted: set %s (or %s)", file, pw, c.Names.Of("wire.TLSKeyPassword.file"))
	}
	var key any
	if legacy {
		//lint:ignore SA1019 see above
		der, err := x509.DecryptPEMBlock(block, []byte(password))
		if err != nil {
			return nil, fmt.Errorf("%s: wrong password for %s", pw, file)
		}
		if key, err = parsePrivateKey(der); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	} else {
		k, err := pkcs8.ParsePKCS8PrivateKey(block.Bytes, []byte(password))
		if err != nil {
			// A wrong password makes the decrypted bytes unparseable.
			return nil, fmt.Errorf("%s: wrong password for %s (or a key encryption that cannot be read)", pw, file)
		}
		key = k
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parsePrivateKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not an RSA, EC or PKCS#8 private key")
}

// loopbackOnly reports whether every broker is a loopback address.
func loopbackOnly(brokers []string) bool {
	for _, b := range brokers {
		host, _, err := net.SplitHostPort(b)
		if err != nil {
			return false
		}
		if ip := net.ParseIP(host); !(host == "localhost" || ip != nil && ip.IsLoopback()) {
			return false
		}
	}
	return len(brokers) > 0
}

// dialer is the Transport's dial function: Dial or a net.Dialer, and with
// OAUTHBEARER connections that retire before their token expires.
func (c Config) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	if c.OAuthToken != nil && strings.EqualFold(strings.TrimSpace(c.SASLMechanism), SASLOAuthBearer) {
		return oauthDialer(dial, c.OAuthToken, c.OAuthScope)
	}
	return dial
}

// configEntries are configs in name order, for CreateTopics.
func configEntries(configs map[string]string) []kafka.ConfigEntry {
	names := make([]string, 0, len(configs))
	for k := range configs {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]kafka.ConfigEntry, 0, len(names))
	for _, k := range names {
		out = append(out, kafka.ConfigEntry{ConfigName: k, ConfigValue: configs[k]})
	}
	return out
}

// sizeSettings names the settings of a created topic's size, for the
// message of a topic the brokers refused to create.
func (c Config) sizeSettings() string {
	return " (" + c.name("TopicPartitions") + ", " + c.name("TopicReplicationFactor") + ")"
}

// saslMechanism builds the SASL mechanism (nil when none is configured).
func (c Config) saslMechanism() (sasl.Mechanism, error) {
	switch strings.ToUpper(strings.TrimSpace(c.SASLMechanism)) {
	case "":
		return nil, nil
	case SASLPlain:
		return plain.Mechanism{Username: c.SASLUsername, Password: c.SASLPassword}, nil
	case SASLScramSHA256:
		m, err := scram.Mechanism(scram.SHA256, c.SASLUsername, c.SASLPassword)
		if err != nil { // the SASLprep error may quote the password: leave it out
			return nil, fmt.Errorf("%s / %s: not usable with SCRAM-SHA-256 (SASLprep failed)", c.name("SASLUsername"), c.name("SASLPassword"))
		}
		return m, nil
	case SASLScramSHA512:
		m, err := scram.Mechanism(scram.SHA512, c.SASLUsername, c.SASLPassword)
		if err != nil { // the SASLprep error may quote the password: leave it out
			return nil, fmt.Errorf("%s / %s: not usable with SCRAM-SHA-512 (SASLprep failed)", c.name("SASLUsername"), c.name("SASLPassword"))
		}
		return m, nil
	case SASLOAuthBearer:
		if c.OAuthToken == nil {
			return nil, fmt.Errorf("%s=OAUTHBEARER: no token source (Config.OAuthToken)", c.name("SASLMechanism"))
		}
		return &oauthBearer{token: c.OAuthToken, scope: c.OAuthScope, scopeName: c.name("OAuthScope")}, nil
	}
	return nil, fmt.Errorf("%s: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER", c.name("SASLMechanism"), c.SASLMechanism)
}
