package producer

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// deviceID returns a realistic 40-hex DeviceId.
func deviceID(part, i int) string {
	h := sha1.Sum([]byte(fmt.Sprintf("device-%d-%d", part, i)))
	return hex.EncodeToString(h[:])
}

// recordLine is a realistic-looking export line.
func recordLine(part, i int) string {
	id := deviceID(part, i)
	return fmt.Sprintf(`{"DeviceId":"%s","DeviceName":"host-%d-%d.contoso.com","OsPlatform":"Windows11","OsVersion":"10.0.22631","LastSeenTime":"2024-05-01 10:11:12","RbacGroupId":%d,"DeviceGatheredInfo":"{\"AvMode\":\"0\",\"AvEngineVersion\":\"1.1.24030.4\"}"}`,
		id, part, i, i%7)
}

// newManifest makes a manifest of n parts with realistic blob URLs.
func newManifest(t testing.TB, n int) schema.Manifest {
	t.Helper()
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("https://blob.example.net/c/InfoGatheringExport/json/OrgId=1/_RbacGroupId=%d/part-%05d.c000.json.gz?sv=2020&sig=SECRETSIG%d", i, i, i)
	}
	m, err := schema.NewManifest(schema.ExportInfoGathering, "2024-05-01T10:00:00.123Z", urls)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// memParts serves part contents by index.
type memParts struct {
	mu     sync.Mutex
	data   map[int]string
	opened map[int]int
}

func newMemParts(contents map[int]string) *memParts {
	return &memParts{data: contents, opened: map[int]int{}}
}

func (m *memParts) OpenPart(_ context.Context, p schema.Part) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opened[p.Index]++
	d, ok := m.data[p.Index]
	if !ok {
		return nil, fmt.Errorf("no part %d", p.Index)
	}
	return io.NopCloser(strings.NewReader(d)), nil
}

// newCluster starts an in-process broker.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

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

// readTopic reads every message of topic from the start to its current end
// offsets: duplicates would show up as extra records.
func readTopic(t testing.TB, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		want += o.Offset
	})
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: got %d of %d records", topic, len(out), want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch %s: %v", topic, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func recHeader(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// byPartition groups records by partition, in offset order.
func byPartition(recs []*kgo.Record, partitions int) [][]*kgo.Record {
	out := make([][]*kgo.Record, partitions)
	for _, r := range recs {
		out[r.Partition] = append(out[r.Partition], r)
	}
	return out
}

func decodeMarker(t testing.TB, r *kgo.Record) schema.Marker {
	t.Helper()
	if string(r.Key) != schema.MarkerKey {
		t.Fatalf("partition %d offset %d: key %q is not a marker key", r.Partition, r.Offset, r.Key)
	}
	var m schema.Marker
	dec := json.NewDecoder(bytes.NewReader(r.Value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("marker value %s: %v", r.Value, err)
	}
	kind, _ := recHeader(r, schema.HeaderMarker)
	if kind != string(m.Marker) {
		t.Fatalf("marker header %q != value marker %q", kind, m.Marker)
	}
	return m
}
