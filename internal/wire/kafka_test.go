package wire

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

func TestEnsureTopic(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(3, "existing"))
	k := newTestKafka(t, c, nil)
	ctx := context.Background()

	n, created, err := k.EnsureTopic(ctx, "existing", 8, -1)
	if err != nil || n != 3 || created {
		t.Fatalf("existing topic: n=%d created=%v err=%v, want its 3 partitions", n, created, err)
	}
	n, created, err = k.EnsureTopic(ctx, "fresh", 4, 1)
	if err != nil || n != 4 || !created {
		t.Fatalf("missing topic: n=%d created=%v err=%v, want it created with 4 partitions", n, created, err)
	}
	if got := len(c.PartitionInfos("fresh")); got != 4 {
		t.Fatalf("broker has %d partitions of the created topic", got)
	}
	n, created, err = k.EnsureTopic(ctx, "fresh", 9, 1)
	if err != nil || n != 4 || created {
		t.Fatalf("second call: n=%d created=%v err=%v", n, created, err)
	}

	// A writer can publish to the topic just created.
	kw := k.NewKeyedWriter("fresh", n)
	defer kw.Close()
	if err := kw.Write(ctx, []KeyedMessage{{Key: []byte(deviceID(0, 1)), Value: []byte(recordLine(0, 1))}}); err != nil {
		t.Fatalf("writing to the created topic: %v", err)
	}
	if got := len(readTopic(t, c.ListenAddrs(), "fresh")); got != 1 {
		t.Fatalf("created topic holds %d messages, want 1", got)
	}
}

func TestEnsureTopicCreationRefused(t *testing.T) {
	c := newCluster(t)
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		creq := req.(*kmsg.CreateTopicsRequest)
		resp := creq.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range creq.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	k := newTestKafka(t, c, nil)
	_, _, err := k.EnsureTopic(context.Background(), "nope", 3, -1)
	if err == nil || !errors.Is(err, kafka.TopicAuthorizationFailed) || !strings.Contains(err.Error(), "may not create") {
		t.Fatalf("EnsureTopic = %v, want a clear authorization error", err)
	}
	// A topic of another setting, with configs of its own: the error names
	// both, so that the operator can create it as it should be.
	_, _, err = k.ensureTopicOn(context.Background(), newTopic{Name: "table", Partitions: 3, ReplicationFactor: -1,
		Configs: map[string]string{"cleanup.policy": "compact"}, Setting: "KAFKA_TABLE_TOPIC"})
	if !errors.Is(err, kafka.TopicAuthorizationFailed) || !strings.Contains(err.Error(), `"table" (KAFKA_TABLE_TOPIC)`) || !strings.Contains(err.Error(), "beforehand with cleanup.policy=compact") {
		t.Fatalf("EnsureTopicOn = %v, want the setting and the configs named", err)
	}
}

func TestEnsureTopicBrokerUnreachable(t *testing.T) {
	cfg := testConfig(nil)
	cfg.Brokers = []string{"127.0.0.1:1"} // nothing listens there
	cfg.DialTimeout = time.Second
	k, err := NewKafka(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err = k.EnsureTopic(ctx, "t", 1, -1)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("EnsureTopic = %v, want an error naming the broker", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %s to fail", d)
	}
}

func writeFile(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidate(t *testing.T) {
	bogusPEM := writeFile(t, "bogus.pem", "not a certificate")
	base := testConfig(nil)
	base.Brokers = []string{"127.0.0.1:9092", "kafka-1.example.com:9093"}
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults with brokers: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		env  string // the field the error names; "" = valid
	}{
		{"scram 512", func(c *Config) { c.SASLMechanism, c.SASLUsername, c.SASLPassword = "scram-sha-512", "u", "p" }, ""},
		{"event hubs", func(c *Config) {
			c.TLS, c.SASLMechanism, c.SASLUsername, c.SASLPassword = true, "PLAIN", "$ConnectionString", "Endpoint=sb://x/;SharedAccessKey=k"
		}, ""},
		{"zstd", func(c *Config) { c.Compression = "zstd" }, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "KAFKA_BROKERS"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka"} }, "KAFKA_BROKERS"},
		{"broker bad port", func(c *Config) { c.Brokers = []string{"kafka:99999"} }, "KAFKA_BROKERS"},
		{"empty topic", func(c *Config) { c.Topic = "" }, "KAFKA_TOPIC"},
		{"bad topic", func(c *Config) { c.Topic = "a/b" }, "KAFKA_TOPIC"},
		{"dlq = topic", func(c *Config) { c.DLQTopic = c.Topic }, "KAFKA_DLQ_TOPIC"},
		{"bad compression", func(c *Config) { c.Compression = "brotli" }, "KAFKA_COMPRESSION"},
		{"unknown mechanism", func(c *Config) { c.SASLMechanism, c.SASLUsername, c.SASLPassword = "GSSAPI", "u", "p" }, "KAFKA_SASL_MECHANISM"},
		{"sasl without user", func(c *Config) { c.SASLMechanism, c.SASLPassword = "PLAIN", "p" }, "KAFKA_SASL_USERNAME"},
		{"sasl without password", func(c *Config) { c.SASLMechanism, c.SASLUsername = "SCRAM-SHA-256", "u" }, "KAFKA_SASL_PASSWORD"},
		{"user without mechanism", func(c *Config) { c.SASLUsername = "u" }, "KAFKA_SASL_MECHANISM"},
		{"ca without tls", func(c *Config) { c.TLSCAFile = bogusPEM }, "KAFKA_TLS_CA_FILE"},
		{"ca missing", func(c *Config) { c.TLS, c.TLSCAFile = true, "/nonexistent/ca.pem" }, "KAFKA_TLS_CA_FILE"},
		{"ca not pem", func(c *Config) { c.TLS, c.TLSCAFile = true, bogusPEM }, "KAFKA_TLS_CA_FILE"},
		{"cert without key", func(c *Config) { c.TLS, c.TLSCertFile = true, bogusPEM }, "KAFKA_TLS_KEY_FILE"},
		{"key without cert", func(c *Config) { c.TLS, c.TLSKeyFile = true, bogusPEM }, "KAFKA_TLS_CERT_FILE"},
		{"cert missing", func(c *Config) { c.TLS, c.TLSCertFile, c.TLSKeyFile = true, "/nonexistent/c.pem", bogusPEM }, "KAFKA_TLS_CERT_FILE"},
		{"bad key pair", func(c *Config) { c.TLS, c.TLSCertFile, c.TLSKeyFile = true, bogusPEM, bogusPEM }, "KAFKA_TLS_CERT_FILE"},
		{"partitions -1", func(c *Config) { c.TopicPartitions = -1 }, "KAFKA_TOPIC_PARTITIONS"},
		{"replication 0", func(c *Config) { c.TopicReplicationFactor = 0 }, "KAFKA_TOPIC_REPLICATION_FACTOR"},
		{"max message tiny", func(c *Config) { c.MaxMessageBytes = 10 }, "KAFKA_MAX_MESSAGE_BYTES"},
		{"retry -1", func(c *Config) { c.RetryMaxElapsed = -time.Second }, "TVM2KAFKA_RETRY_MAX_ELAPSED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.Brokers = append([]string(nil), base.Brokers...)
			tc.mod(&cfg)
			err := cfg.Validate()
			switch {
			case tc.env == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.env != "" && err == nil:
				t.Fatalf("accepted, want an error naming %s", tc.env)
			case tc.env != "" && !strings.Contains(err.Error(), tc.env):
				t.Fatalf("error %q does not name %s", err, tc.env)
			}
			if err != nil && cfg.SASLPassword != "" && strings.Contains(err.Error(), cfg.SASLPassword) {
				t.Fatalf("error leaks the password: %v", err)
			}
			if _, kerr := NewKafka(cfg, zerolog.Nop()); (kerr == nil) != (err == nil) {
				t.Fatalf("NewKafka and Validate disagree: %v vs %v", kerr, err)
			}
		})
	}
}

// TestConfigErrorsNameTheFieldsWithoutNames: a Config without Names
// names its own fields, also where a message refers to another one.
func TestConfigErrorsNameTheFieldsWithoutNames(t *testing.T) {
	cfg := testConfig([]string{"kafka"})
	cfg.Names = nil
	cfg.SASLMechanism, cfg.SASLPassword = "PLAIN", "p"
	err := cfg.Validate()
	for _, want := range []string{`Brokers: "kafka" is not host:port`, "SASLUsername: required with SASLMechanism=PLAIN"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}

func TestSASLAgainstKfake(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			const password = "s3cr3t-Passw0rd"
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "alice", password), kfake.SeedTopics(2, "records"))
			k := newTestKafka(t, c, func(cfg *Config) { cfg.SASLMechanism, cfg.SASLUsername, cfg.SASLPassword = mech, "alice", password })
			if n, _, err := k.EnsureTopic(context.Background(), "records", 1, -1); err != nil || n != 2 {
				t.Fatalf("EnsureTopic with %s: %d, %v", mech, n, err)
			}

			var logs testutil.SyncBuffer
			cfg := testConfig(nil)
			cfg.Brokers, cfg.Topic, cfg.DialTimeout = c.ListenAddrs(), "records", 2*time.Second
			cfg.SASLMechanism, cfg.SASLUsername, cfg.SASLPassword = mech, "alice", "wrong-"+password
			bad, err := NewKafka(cfg, zerolog.New(&logs).Level(zerolog.DebugLevel))
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err = bad.EnsureTopic(ctx, "records", 1, -1)
			if err == nil {
				t.Fatal("wrong password accepted")
			}
			if strings.Contains(err.Error(), password) || strings.Contains(logs.String(), password) {
				t.Fatalf("password leaked: %v / %s", err, logs.String())
			}
		})
	}
}

func TestKeyedWriterRoutesByMurmur2OrTheNamedPartition(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(4, "table"))
	k := newTestKafka(t, c, nil)
	w := k.NewKeyedWriter("table", 4)
	defer w.Close()
	key := []byte("0123456789abcdef0123456789abcdef01234567")
	home := schema.Partition(key, 4)
	other := (home + 1) % 4
	if err := w.Write(context.Background(), []KeyedMessage{
		{Key: key, Value: []byte("v")},
		{Key: key, Pinned: true, Partition: other}}); err != nil {
		t.Fatal(err)
	}
	recs := readTopic(t, c.ListenAddrs(), "table")
	if len(recs) != 2 || int(recs[0].Partition) == int(recs[1].Partition) {
		t.Fatalf("%d records", len(recs))
	}
	for _, r := range recs {
		want := home
		if r.Value == nil {
			want = other
		}
		if int(r.Partition) != want {
			t.Fatalf("record with value %q in partition %d, want %d", r.Value, r.Partition, want)
		}
	}
}

// TestEnsureRefusesTopicsThatAreNotCompacted: a table topic must be
// compacted (compact,delete only with retention.ms=-1).
func TestEnsureRefusesTopicsThatAreNotCompacted(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := newTestKafka(t, c, nil)
	cl := k.client
	ctx := context.Background()
	create := func(name string, cfg map[string]string) {
		var entries []kafka.ConfigEntry
		for k, v := range cfg {
			entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: name, NumPartitions: 5, ReplicationFactor: 1, ConfigEntries: entries}}})
		if err != nil || resp.Errors[name] != nil {
			t.Fatalf("create %s: %v %v", name, err, resp.Errors)
		}
	}
	create("plain", nil)
	create("both", map[string]string{"cleanup.policy": "compact,delete"})
	create("both-forever", map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "-1"})
	create("compacted", map[string]string{"cleanup.policy": "compact"})
	for name, ok := range map[string]bool{"plain": false, "both": false, "both-forever": true, "compacted": true} {
		n, created, err := k.EnsureCompacted(ctx, name, 3, -1)
		var ce *PolicyError
		switch {
		case ok && (err != nil || n != 5 || created):
			t.Errorf("%s: %d partitions, created %v, %v", name, n, created, err)
		case !ok && (!errors.As(err, &ce) || !strings.Contains(err.Error(), "KAFKA_TABLE_TOPIC")):
			t.Errorf("%s: %v, want a PolicyError naming KAFKA_TABLE_TOPIC", name, err)
		}
	}
	// A missing topic is created compacted: the next run accepts it.
	for _, want := range []bool{true, false} {
		if n, created, err := k.EnsureCompacted(ctx, "fresh", 3, -1); err != nil || n != 3 || created != want {
			t.Fatalf("missing topic: %d partitions, created %v, %v; want 3 partitions, created %v", n, created, err, want)
		}
	}
}
