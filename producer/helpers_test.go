package producer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/internal/wire/wiretest"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Shared with the other packages' tests.
var (
	deviceID   = testutil.DeviceID
	recordLine = testutil.RecordLine
	newCluster = testutil.NewCluster
	readTopic  = testutil.ReadTopic
)

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

// newTestKafka connects the real kafka-go writer to c.
func newTestKafka(t testing.TB, c *kfake.Cluster, mod func(*wire.Config)) *wire.Kafka {
	t.Helper()
	cfg := wiretest.Config(c.ListenAddrs())
	if mod != nil {
		mod(&cfg)
	}
	k, err := wire.NewKafka(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
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
	if kind != string(m.Kind) {
		t.Fatalf("marker header %q != value marker %q", kind, m.Kind)
	}
	return m
}
