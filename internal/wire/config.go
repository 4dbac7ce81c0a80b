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
	"github.com/youmark/pkcs8"
)

// Defaults of Config; see DefaultConfig.
const (
	DefaultTopic                  = "mde.infogathering"
	DefaultCompression            = "lz4"
	DefaultTopicPartitions        = 6
	DefaultTopicReplicationFactor = -1
	DefaultMaxMessageBytes        = 1_000_000
	DefaultBatchBytes             = 1_000_000
	DefaultBatchTimeout           = 5 * time.Millisecond
	DefaultWriteTimeout           = 30 * time.Second
	DefaultDialTimeout            = 10 * time.Second
	DefaultRetryMaxElapsed        = 2 * time.Minute
)

// Bounds of Config.MaxMessageBytes (KAFKA_MAX_MESSAGE_BYTES). The upper
// bound keeps the memory of a run bounded: every worker may hold up to two
// batches with a line of that size.
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

// Config is the Kafka side of tvm2kafka. The comment of each field names
// the environment variable it is read from (README "Configuration");
// DefaultConfig holds every default.
type Config struct {
	// Brokers are host:port bootstrap addresses (KAFKA_BROKERS).
	Brokers []string
	// Topic receives records and markers (KAFKA_TOPIC, default
	// "mde.infogathering").
	Topic string
	// DLQTopic receives rejected lines when set (KAFKA_DLQ_TOPIC).
	DLQTopic string
	// TableTopic is the compacted device table, when set
	// (KAFKA_TABLE_TOPIC; package table).
	TableTopic string
	// Compression is none, gzip, snappy, lz4 or zstd (KAFKA_COMPRESSION,
	// default lz4: cheapest CPU per byte saved on the producer).
	Compression string

	// SASLMechanism is empty, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or
	// OAUTHBEARER (KAFKA_SASL_MECHANISM, case-insensitive); SASLUsername
	// and SASLPassword (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD) are
	// required with the first three and refused with OAUTHBEARER. The
	// password never appears in logs or errors.
	SASLMechanism, SASLUsername, SASLPassword string
	// OAuthToken yields the OAUTHBEARER tokens (required with it, set by
	// the program: the Entra ID credential); OAuthScope, their scope, is
	// named in errors (KAFKA_OAUTH_SCOPE).
	OAuthToken OAuthToken
	OAuthScope string

	// TLS turns TLS on (KAFKA_TLS). TLSCAFile is a PEM bundle of CAs to
	// trust instead of the system pool (KAFKA_TLS_CA_FILE); TLSCertFile
	// and TLSKeyFile a client certificate for mutual TLS
	// (KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE).
	TLS                                bool
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// TLSKeyPassword decrypts an encrypted TLSKeyFile
	// (KAFKA_TLS_KEY_PASSWORD): PKCS#8 ("ENCRYPTED PRIVATE KEY") or
	// legacy PEM encryption ("Proc-Type: 4,ENCRYPTED").
	TLSKeyPassword string
	// TLSConfig, when set, is the TLS configuration itself (TLS on; the
	// files above are not read): for programs that build their own.
	TLSConfig *tls.Config

	// TopicPartitions is the partition count of a topic this program
	// creates (KAFKA_TOPIC_PARTITIONS, default 6). An existing topic is
	// used with the partition count it has.
	TopicPartitions int
	// TopicReplicationFactor of a created topic, -1 = the broker's
	// default.replication.factor (KAFKA_TOPIC_REPLICATION_FACTOR).
	TopicReplicationFactor int
	// TopicConfig holds the topic configs (retention.ms, …) of a topic this
	// program creates (KAFKA_TOPIC_CONFIG); an existing topic keeps its own.
	TopicConfig map[string]string

	// MaxMessageBytes bounds one record: its key, value and headers (names
	// and values) together (KAFKA_MAX_MESSAGE_BYTES, default 1,000,000,
	// the broker's default message.max.bytes less headroom); a line whose
	// record would be larger is rejected, and a line longer than that is
	// rejected without being buffered.
	MaxMessageBytes int

	// BatchBytes and BatchTimeout are the per-partition batching: a
	// partition's batch is sent when it holds BatchBytes of records
	// (default 1,000,000 — under Azure Event Hubs' 1 MB request limit;
	// raised to MaxMessageBytes when smaller) or when its first record is
	// BatchTimeout old (default 5ms) and no request of the partition is
	// in flight.
	BatchBytes   int64
	BatchTimeout time.Duration

	// WriteTimeout bounds one produce request (KAFKA_WRITE_TIMEOUT,
	// default 30s); DialTimeout one connection attempt (KAFKA_DIAL_TIMEOUT,
	// default 10s).
	WriteTimeout, DialTimeout time.Duration
	// Dial opens connections to the brokers; nil = a net.Dialer with
	// DialTimeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// RetryMaxElapsed bounds the retries of a failed write or marker
	// (KAFKA_RETRY_MAX_ELAPSED, default 2m).
	RetryMaxElapsed time.Duration

	// Names are the names of the settings behind some fields, for the
	// messages that tell an operator what to change; the program fills
	// them in from its own declarations.
	Names Names
}

// Names are the names of settings that messages refer to.
type Names struct {
	TopicConfig, TopicPartitions, TopicReplicationFactor string
}

// DefaultConfig returns a Config with every default set and no brokers.
func DefaultConfig() Config {
	return Config{
		Topic:                  DefaultTopic,
		Compression:            DefaultCompression,
		TopicPartitions:        DefaultTopicPartitions,
		TopicReplicationFactor: DefaultTopicReplicationFactor,
		MaxMessageBytes:        DefaultMaxMessageBytes,
		BatchBytes:             DefaultBatchBytes,
		BatchTimeout:           DefaultBatchTimeout,
		WriteTimeout:           DefaultWriteTimeout,
		DialTimeout:            DefaultDialTimeout,
		RetryMaxElapsed:        DefaultRetryMaxElapsed,
	}
}

// Validate checks the configuration without any network call. Every error
// names the environment variable to fix.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if len(c.Brokers) == 0 {
		add("KAFKA_BROKERS: at least one broker host:port is required")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			add("KAFKA_BROKERS: %q is not host:port", b)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add("KAFKA_BROKERS: %q has an invalid port", b)
		}
	}
	if err := validTopic(c.Topic); err != nil {
		add("KAFKA_TOPIC: %w", err)
	}
	if c.DLQTopic != "" {
		if err := validTopic(c.DLQTopic); err != nil {
			add("KAFKA_DLQ_TOPIC: %w", err)
		} else if c.DLQTopic == c.Topic {
			add("KAFKA_DLQ_TOPIC: must differ from KAFKA_TOPIC")
		}
	}
	if c.TableTopic != "" {
		if err := validTopic(c.TableTopic); err != nil {
			add("KAFKA_TABLE_TOPIC: %w", err)
		} else if c.TableTopic == c.Topic || c.TableTopic == c.DLQTopic {
			add("KAFKA_TABLE_TOPIC: must differ from KAFKA_TOPIC and KAFKA_DLQ_TOPIC")
		}
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		add("KAFKA_COMPRESSION: %w", err)
	}

	mech := strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
	switch mech {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" {
			add("KAFKA_SASL_MECHANISM: required when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
		}
	case SASLOAuthBearer:
		if c.SASLUsername != "" || c.SASLPassword != "" {
			add("KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD: not used with KAFKA_SASL_MECHANISM=OAUTHBEARER (the token comes from the Entra ID credential): remove them")
		}
		if !c.TLS && !loopbackOnly(c.Brokers) {
			add("KAFKA_TLS: OAUTHBEARER sends a bearer token, so TLS is required unless every broker is a loopback address")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASLUsername == "" {
			add("KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM=%s", mech)
		}
		if c.SASLPassword == "" {
			add("KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM=%s", mech)
		}
		if c.SASLUsername != "" && c.SASLPassword != "" {
			if _, err := c.saslMechanism(); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		add("KAFKA_SASL_MECHANISM: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER", c.SASLMechanism)
	}

	if !c.TLS {
		for _, f := range []struct{ env, val string }{
			{"KAFKA_TLS_CA_FILE", c.TLSCAFile}, {"KAFKA_TLS_CERT_FILE", c.TLSCertFile}, {"KAFKA_TLS_KEY_FILE", c.TLSKeyFile}, {"KAFKA_TLS_KEY_PASSWORD", c.TLSKeyPassword},
		} {
			if f.val != "" {
				add("%s: set but KAFKA_TLS is off (set KAFKA_TLS=true)", f.env)
			}
		}
	} else if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
	}

	if c.TopicPartitions < 1 {
		add("KAFKA_TOPIC_PARTITIONS: must be at least 1, got %d", c.TopicPartitions)
	}
	if c.TopicReplicationFactor != -1 && c.TopicReplicationFactor < 1 {
		add("KAFKA_TOPIC_REPLICATION_FACTOR: must be -1 (broker default) or at least 1, got %d", c.TopicReplicationFactor)
	}
	for k, v := range c.TopicConfig {
		if k == "" || v == "" {
			add("KAFKA_TOPIC_CONFIG: %q=%q is not key=value", k, v)
		}
	}
	if c.MaxMessageBytes < MinMaxMessageBytes || c.MaxMessageBytes > MaxMaxMessageBytes {
		add("KAFKA_MAX_MESSAGE_BYTES: %d is out of range %d..%d", c.MaxMessageBytes, MinMaxMessageBytes, MaxMaxMessageBytes)
	}
	if c.BatchBytes < 1 {
		add("KAFKA_BATCH_BYTES: must be positive, got %d", c.BatchBytes)
	}
	if c.BatchTimeout <= 0 {
		add("KAFKA_BATCH_TIMEOUT: must be positive, got %s", c.BatchTimeout)
	}
	if c.WriteTimeout <= 0 {
		add("KAFKA_WRITE_TIMEOUT: must be positive, got %s", c.WriteTimeout)
	}
	if c.DialTimeout <= 0 {
		add("KAFKA_DIAL_TIMEOUT: must be positive, got %s", c.DialTimeout)
	}
	if c.RetryMaxElapsed <= 0 {
		add("KAFKA_RETRY_MAX_ELAPSED: must be positive, got %s", c.RetryMaxElapsed)
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
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %s holds no PEM certificate", c.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		return nil, errors.New("KAFKA_TLS_KEY_FILE: required with KAFKA_TLS_CERT_FILE")
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		return nil, errors.New("KAFKA_TLS_CERT_FILE: required with KAFKA_TLS_KEY_FILE")
	case c.TLSCertFile != "":
		for _, f := range []struct{ env, path string }{{"KAFKA_TLS_CERT_FILE", c.TLSCertFile}, {"KAFKA_TLS_KEY_FILE", c.TLSKeyFile}} {
			if _, err := os.Stat(f.path); err != nil {
				return nil, fmt.Errorf("%s: %w", f.env, err)
			}
		}
		certPEM, err := os.ReadFile(c.TLSCertFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE: %w", err)
		}
		keyPEM, err := os.ReadFile(c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_KEY_FILE: %w", err)
		}
		if keyPEM, err = decryptKey(keyPEM, c.TLSKeyPassword); err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// crypto/tls errors describe the PEM structure, never key bytes.
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE / KAFKA_TLS_KEY_FILE: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case c.TLSKeyPassword != "":
		return nil, errors.New("KAFKA_TLS_KEY_PASSWORD: set but there is no KAFKA_TLS_KEY_FILE")
	}
	return cfg, nil
}

// decryptKey returns the PEM private key of keyPEM, decrypted with
// password when it is encrypted. Errors name the setting to fix.
func decryptKey(keyPEM []byte, password string) ([]byte, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return keyPEM, nil // tls.X509KeyPair says what is wrong with it
	}
	//lint:ignore SA1019 legacy PEM encryption is insecure as a format, but keys in it exist and are only read here
	legacy := x509.IsEncryptedPEMBlock(block)
	encrypted := legacy || block.Type == "ENCRYPTED PRIVATE KEY"
	switch {
	case !encrypted && password != "":
		return nil, errors.New("KAFKA_TLS_KEY_PASSWORD: set, but KAFKA_TLS_KEY_FILE is not encrypted: remove the password")
	case !encrypted:
		return keyPEM, nil
	case password == "":
		return nil, errors.New("KAFKA_TLS_KEY_FILE: the key is encrypted: set KAFKA_TLS_KEY_PASSWORD (or KAFKA_TLS_KEY_PASSWORD_FILE)")
	}
	var key any
	if legacy {
		//lint:ignore SA1019 see above
		der, err := x509.DecryptPEMBlock(block, []byte(password))
		if err != nil {
			return nil, errors.New("KAFKA_TLS_KEY_PASSWORD: wrong password for KAFKA_TLS_KEY_FILE")
		}
		if key, err = parsePrivateKey(der); err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_KEY_FILE: %w", err)
		}
	} else {
		k, err := pkcs8.ParsePKCS8PrivateKey(block.Bytes, []byte(password))
		if err != nil {
			// A wrong password makes the decrypted bytes unparseable.
			return nil, errors.New("KAFKA_TLS_KEY_PASSWORD: wrong password for KAFKA_TLS_KEY_FILE (or a key encryption that cannot be read)")
		}
		key = k
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_TLS_KEY_FILE: %w", err)
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
	var names []string
	for _, n := range []string{c.Names.TopicPartitions, c.Names.TopicReplicationFactor} {
		if n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
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
			return nil, errors.New("KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD: not usable with SCRAM-SHA-256 (SASLprep failed)")
		}
		return m, nil
	case SASLScramSHA512:
		m, err := scram.Mechanism(scram.SHA512, c.SASLUsername, c.SASLPassword)
		if err != nil { // the SASLprep error may quote the password: leave it out
			return nil, errors.New("KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD: not usable with SCRAM-SHA-512 (SASLprep failed)")
		}
		return m, nil
	case SASLOAuthBearer:
		if c.OAuthToken == nil {
			return nil, errors.New("KAFKA_SASL_MECHANISM=OAUTHBEARER: no token source (producer.Config.OAuthToken)")
		}
		return &oauthBearer{token: c.OAuthToken, scope: c.OAuthScope}, nil
	}
	return nil, fmt.Errorf("KAFKA_SASL_MECHANISM: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER", c.SASLMechanism)
}
