package wire

import (
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
	cfg := DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Topic = "records"
	cfg.DialTimeout = 5 * time.Second
	cfg.WriteTimeout = 10 * time.Second
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
