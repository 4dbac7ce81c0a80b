package wire

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// Shared with the other packages' tests.
var (
	deviceID   = testutil.DeviceID
	recordLine = testutil.RecordLine
	newCluster = testutil.NewCluster
	readTopic  = testutil.ReadTopic
)

// newTestKafka connects the real kafka-go writer to c.
func newTestKafka(t testing.TB, c *kfake.Cluster, mod func(*Config)) *Kafka {
	t.Helper()
	cfg := testConfig(c.ListenAddrs())
	if mod != nil {
		mod(&cfg)
	}
	k, err := NewKafka(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// testConfig is a Config with the values a run has when no setting is
// given (internal/wire/wiretest has the same for other packages' tests).
func testConfig(brokers []string) Config {
	return Config{
		Brokers: brokers, Topic: "records", Compression: "lz4", TopicPartitions: 6, TopicReplicationFactor: -1,
		MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute, DialTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second,
		Names: testNames,
	}
}

// testNames names the fields as the program's settings do.
func testNames(key string) string {
	field, file := strings.CutSuffix(strings.TrimPrefix(key, "wire."), ".file")
	n := map[string]string{
		"Brokers": "KAFKA_BROKERS", "Topic": "KAFKA_TOPIC", "DLQTopic": "KAFKA_DLQ_TOPIC", "TableTopic": "KAFKA_TABLE_TOPIC",
		"Compression": "KAFKA_COMPRESSION", "SASLMechanism": "KAFKA_SASL_MECHANISM", "SASLUsername": "KAFKA_SASL_USERNAME",
		"SASLPassword": "KAFKA_SASL_PASSWORD", "OAuthScope": "KAFKA_OAUTH_SCOPE", "TLS": "KAFKA_TLS", "TLSCAFile": "KAFKA_TLS_CA_FILE",
		"TLSCertFile": "KAFKA_TLS_CERT_FILE", "TLSKeyFile": "KAFKA_TLS_KEY_FILE", "TLSKeyPassword": "KAFKA_TLS_KEY_PASSWORD",
		"TopicPartitions": "KAFKA_TOPIC_PARTITIONS", "TopicReplicationFactor": "KAFKA_TOPIC_REPLICATION_FACTOR",
		"TopicConfig": "KAFKA_TOPIC_CONFIG", "MaxMessageBytes": "KAFKA_MAX_MESSAGE_BYTES", "RetryMaxElapsed": "TVM2KAFKA_RETRY_MAX_ELAPSED",
	}[field]
	if file && n != "" {
		n += "_FILE"
	}
	return n
}
