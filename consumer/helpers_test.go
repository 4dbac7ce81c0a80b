package consumer_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// tb is what topicBuilder needs of a testing.TB (an example has none).
type tb interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// newCluster starts an in-process broker with topic of n partitions.
func newCluster(t testing.TB, topic string, n int) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(n), topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// device returns DeviceId i and a line for it (version v of its content).
func device(i, v int) (id, line string) {
	h := sha1.Sum([]byte(fmt.Sprint("device-", i)))
	id = hex.EncodeToString(h[:])
	return id, fmt.Sprintf(`{"DeviceId":"%s","DeviceName":"host-%d","Version":%d,"DeviceGatheredInfo":"{\"AvMode\":\"0\"}"}`, id, i, v)
}

// topicBuilder writes what tvm2kafka writes: markers and records with the
// contract's keys, headers and murmur2 partitions.
type topicBuilder struct {
	t      tb
	w      *kafka.Writer
	n      int
	msgs   []kafka.Message
	counts map[string][]int64 // run → records per partition
	total  map[string]int64
}

func newBuilder(t tb, brokers []string, topic string, n int) *topicBuilder {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, BatchSize: 500, BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll, Compression: kafka.Lz4,
		Balancer: kafka.BalancerFunc(func(m kafka.Message, _ ...int) int { return m.Partition })}
	t.Cleanup(func() { w.Close() })
	return &topicBuilder{t: t, w: w, n: n, counts: map[string][]int64{}, total: map[string]int64{}}
}

func (b *topicBuilder) marker(run string, kind schema.MarkerKind, only ...int) {
	parts := only
	if len(parts) == 0 {
		for p := range b.n {
			parts = append(parts, p)
		}
	}
	for _, p := range parts {
		mk := schema.Marker{Kind: kind, Export: schema.ExportInfoGathering, GeneratedTime: "2026-11-27T10:01:00Z",
			RunID: run, Partition: p, Partitions: b.n, Parts: 1, Time: time.Now().UTC()}
		switch kind {
		case schema.MarkerEnd:
			total, pr, rej := b.total[run], b.counts[run][p], int64(0)
			mk.Records, mk.PartitionRecords, mk.Rejected = &total, &pr, &rej
		case schema.MarkerAbort:
			mk.Reason = "test abort"
		}
		v, err := json.Marshal(mk)
		if err != nil {
			b.t.Fatal(err)
		}
		b.msgs = append(b.msgs, kafka.Message{Partition: p, Key: []byte(schema.MarkerKey), Value: v, Headers: []kafka.Header{
			{Key: schema.HeaderMarker, Value: []byte(kind)}, {Key: schema.HeaderExport, Value: []byte(schema.ExportInfoGathering)},
			{Key: schema.HeaderGeneratedTime, Value: []byte(mk.GeneratedTime)}, {Key: schema.HeaderRunID, Value: []byte(run)},
		}})
	}
}

func (b *topicBuilder) start(run string, only ...int) {
	if b.counts[run] == nil {
		b.counts[run] = make([]int64, b.n)
	}
	b.marker(run, schema.MarkerStart, only...)
}

func (b *topicBuilder) record(run string, line int, id, value string) {
	p := schema.Partition([]byte(id), b.n)
	b.counts[run][p]++
	b.total[run]++
	b.msgs = append(b.msgs, kafka.Message{Partition: p, Key: []byte(id), Value: []byte(value), Headers: []kafka.Header{
		{Key: schema.HeaderExport, Value: []byte(schema.ExportInfoGathering)},
		{Key: schema.HeaderGeneratedTime, Value: []byte("2026-11-27T10:01:00Z")},
		{Key: schema.HeaderRunID, Value: []byte(run)},
		{Key: schema.HeaderPart, Value: []byte("0")},
		{Key: schema.HeaderLine, Value: []byte(strconv.Itoa(line))},
		{Key: schema.HeaderContentType, Value: []byte(schema.ContentTypeJSON)},
	}})
}

// snapshot writes a whole run of devices [from, to) at version v.
func (b *topicBuilder) snapshot(run string, from, to, v int, finish schema.MarkerKind) {
	b.start(run)
	for i := from; i < to; i++ {
		id, line := device(i, v)
		b.record(run, i-from+1, id, line)
	}
	if finish != "" {
		b.marker(run, finish)
	}
}

// flush writes what was built, in order.
func (b *topicBuilder) flush() {
	b.t.Helper()
	if len(b.msgs) == 0 {
		return
	}
	if err := b.w.WriteMessages(context.Background(), b.msgs...); err != nil {
		b.t.Fatal(err)
	}
	b.msgs = b.msgs[:0]
}
