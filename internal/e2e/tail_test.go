//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// TestTailCheckOnALargeTopic measures the check of unchanged exports on a
// topic holding 10 snapshots of 100,000 records (6 partitions, 1,000,120
// messages, written as tvm2kafka writes them: snapshot-start, records,
// snapshot-end once the records are acknowledged). The run reads one
// message per partition — one fetch each, only the snapshot-end decoded —
// and finds the export unchanged. The figures are logged (README,
// "Unchanged exports and concurrent runs").
func TestTailCheckOnALargeTopic(t *testing.T) {
	const partitions, snapshots, records = 6, 10, 100_000
	w := newWorld(t, 100, 1)
	w.rig.CreateTopic(t, w.Topic, partitions, nil)
	cl := w.rig.Client(t, kgo.DefaultProduceTopic(w.Topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerLinger(5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	began := time.Now()
	var gen string
	for s := range snapshots {
		gen = time.Date(2026, 1, 1+s, 6, 0, 0, 0, time.UTC).Format("2006-01-02T15:04:05.0000000Z")
		run := fmt.Sprintf("run-%02d", s)
		markers := func(kind schema.MarkerKind) {
			for p := range partitions {
				n := int64(records / partitions)
				m := schema.Marker{Kind: kind, Export: schema.ExportInfoGathering, GeneratedTime: gen, RunID: run,
					Partition: p, Partitions: partitions, Parts: 1, Time: time.Now()}
				if kind == schema.MarkerEnd {
					total, zero := int64(records), int64(0)
					m.Records, m.PartitionRecords, m.Rejected = &total, &n, &zero
				}
				v, _ := json.Marshal(m)
				cl.Produce(ctx, &kgo.Record{Partition: int32(p), Key: []byte(schema.MarkerKey), Value: v, Headers: []kgo.RecordHeader{
					{Key: schema.HeaderMarker, Value: []byte(kind)}, {Key: schema.HeaderExport, Value: []byte(schema.ExportInfoGathering)},
					{Key: schema.HeaderGeneratedTime, Value: []byte(gen)}, {Key: schema.HeaderRunID, Value: []byte(run)},
				}}, nil)
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		markers(schema.MarkerStart)
		for i := range records {
			id := fmt.Sprintf("%040x", s*records+i)
			cl.Produce(ctx, &kgo.Record{Partition: int32(i % partitions), Key: []byte(id),
				Value:   []byte(`{"DeviceId":"` + id + `","DeviceName":"host.contoso.com","OsPlatform":"Windows11"}`),
				Headers: []kgo.RecordHeader{{Key: schema.HeaderRunID, Value: []byte(run)}, {Key: schema.HeaderGeneratedTime, Value: []byte(gen)}},
			}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("produce: %v", err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		markers(schema.MarkerEnd)
	}
	t.Logf("topic of %d messages written in %v", w.endSum(), time.Since(began).Round(time.Millisecond))

	w.mu.Lock()
	w.gen = gen
	w.mu.Unlock()
	r := w.run(nil)
	if r.Code != 0 || len(findLog(r.Stderr, "snapshot unchanged")) != 1 {
		t.Fatalf("exit %d, want 0 with snapshot unchanged\n%s", r.Code, tail(r.Stderr, 20))
	}
	read := findLog(r.Stderr, "topic tail read")
	if len(read) != 1 {
		t.Fatalf("no \"topic tail read\" debug line")
	}
	l := read[0]
	if l["fetches"] != float64(partitions) || l["records_decoded"] != float64(partitions) {
		t.Fatalf("tail read %v, want one fetch and one decoded record per partition", l)
	}
	took := time.Duration(l["took"].(float64) * float64(time.Millisecond))
	t.Logf("check of %d snapshots × %d records: %v fetches, %v records decoded, %v; whole run %v",
		snapshots, records, l["fetches"], l["records_decoded"], took, summaryOf(t, r.Stderr)["duration"])
}
