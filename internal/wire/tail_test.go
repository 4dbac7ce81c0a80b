package wire

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// markerRecord builds a marker message as the pipeline writes it.
func markerRecord(t testing.TB, kind schema.MarkerKind, export, gen, runID string, partition, partitions int, at time.Time) *kgo.Record {
	t.Helper()
	m := schema.Marker{Kind: kind, Export: export, GeneratedTime: gen, RunID: runID, Partition: partition, Partitions: partitions, Parts: 1, Time: at}
	if kind == schema.MarkerEnd {
		n := int64(0)
		m.Records, m.PartitionRecords, m.Rejected = &n, &n, &n
	}
	v, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{
		Topic: "records", Partition: int32(partition), Key: []byte(schema.MarkerKey), Value: v, Timestamp: at,
		Headers: []kgo.RecordHeader{
			{Key: schema.HeaderMarker, Value: []byte(kind)},
			{Key: schema.HeaderExport, Value: []byte(export)},
			{Key: schema.HeaderGeneratedTime, Value: []byte(gen)},
			{Key: schema.HeaderRunID, Value: []byte(runID)},
		},
	}
}

func deviceRecord(partition, i int, runID, gen string, at time.Time) *kgo.Record {
	return &kgo.Record{
		Topic: "records", Partition: int32(partition), Key: []byte(deviceID(partition, i)), Value: []byte(recordLine(partition, i)), Timestamp: at,
		Headers: []kgo.RecordHeader{
			{Key: schema.HeaderExport, Value: []byte(schema.ExportInfoGathering)},
			{Key: schema.HeaderGeneratedTime, Value: []byte(gen)},
			{Key: schema.HeaderRunID, Value: []byte(runID)},
		},
	}
}

// producerClient writes records to their explicit partitions with lz4
// batches of many records, as a real producer does.
func producerClient(t testing.TB, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerLinger(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func produceAll(t testing.TB, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestTailOfEmptyTopic(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(3, "records"))
	k := newTestKafka(t, c, nil)
	tail, err := k.Tail(context.Background(), "records", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(tail.Partitions) != 3 || tail.Fetches != 0 {
		t.Fatalf("tail %+v, want 3 empty partitions and no fetch", tail)
	}
	for p, m := range tail.Partitions {
		if !m.Empty() || m.Partition != p {
			t.Fatalf("partition %d: %+v", p, m)
		}
	}
	if tail.Unchanged(schema.ExportInfoGathering, "2024-05-01T10:00:00Z") {
		t.Fatal("an empty topic reads as unchanged")
	}
	if _, _, ok := tail.Complete(); ok {
		t.Fatal("an empty topic reads as complete")
	}
	if len(tail.Unfinished()) != 0 {
		t.Fatal("an empty topic holds unfinished runs")
	}
}

// TestTailReadsOnlyTheNewestBatch: many records in compressed batches, then
// markers; the tail is the message at end−1 of each partition, found with
// one fetch per partition that decodes at most the last batch.
func TestTailReadsOnlyTheNewestBatch(t *testing.T) {
	const partitions, perPartition = 4, 3000
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	cl := producerClient(t, c)
	gen := "2024-05-01T10:00:00.123Z"
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for p := range partitions {
		recs = append(recs, markerRecord(t, schema.MarkerStart, schema.ExportInfoGathering, gen, "run-a", p, partitions, t0))
		for i := range perPartition {
			recs = append(recs, deviceRecord(p, i, "run-a", gen, t0))
		}
	}
	produceAll(t, cl, recs...)
	recs = recs[:0]
	// Partitions 0-2 end with snapshot-end in the same batch as records
	// (records then the marker, one produce call), partition 3 with a
	// record of a run still publishing.
	t1 := t0.Add(30 * time.Minute)
	for p := range partitions - 1 {
		recs = append(recs, deviceRecord(p, perPartition, "run-a", gen, t1), markerRecord(t, schema.MarkerEnd, schema.ExportInfoGathering, gen, "run-a", p, partitions, t1))
	}
	recs = append(recs, deviceRecord(3, perPartition+1, "run-b", gen, t1))
	produceAll(t, cl, recs...)

	k := newTestKafka(t, c, nil)
	tail, err := k.Tail(context.Background(), "records", partitions)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d fetches decoded %d records", tail.Fetches, tail.Records)
	if tail.Fetches != partitions {
		t.Fatalf("%d fetches, want one per partition (%d)", tail.Fetches, partitions)
	}
	if tail.Records > partitions*(perPartition/2) {
		t.Fatalf("decoded %d records for %d partitions of %d: the tail read more than the last batches", tail.Records, partitions, perPartition+2)
	}
	for p := range partitions - 1 {
		m := tail.Partitions[p]
		if m.Offset != perPartition+2 || m.MarkerKind() != schema.MarkerEnd || m.RunID() != "run-a" || m.Marker == nil ||
			m.Marker.Partition != p || !m.Time.Equal(t1) {
			t.Fatalf("partition %d tail: offset %d kind %q run %q marker %+v time %v", p, m.Offset, m.MarkerKind(), m.RunID(), m.Marker, m.Time)
		}
	}
	last := tail.Partitions[3]
	if last.MarkerKind() != "" || last.RunID() != "run-b" || string(last.Key) != deviceID(3, perPartition+1) || last.Marker != nil {
		t.Fatalf("partition 3 tail: key %q kind %q run %q", last.Key, last.MarkerKind(), last.RunID())
	}
	if tail.Unchanged(schema.ExportInfoGathering, gen) {
		t.Fatal("unchanged although partition 3 ends with another run's record")
	}
	un := tail.Unfinished()
	if len(un) != 1 || un[0].RunID != "run-b" || !un[0].LastWrite.Equal(t1) || len(un[0].Partitions) != 1 || un[0].Partitions[0] != 3 {
		t.Fatalf("unfinished %+v, want run-b on partition 3", un)
	}
}

// TestTailOfDeletedRecords: records removed by retention (DeleteRecords
// moves the log start to the end) leave the partition empty.
func TestTailOfDeletedRecords(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "records"))
	cl := producerClient(t, c)
	now := time.Now()
	produceAll(t, cl, markerRecord(t, schema.MarkerStart, "E", "G", "run-x", 0, 2, now), markerRecord(t, schema.MarkerStart, "E", "G", "run-x", 1, 2, now))
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "records", Partition: 0, At: 1})
	if _, err := adm.DeleteRecords(ctx, offs); err != nil {
		t.Fatal(err)
	}
	k := newTestKafka(t, c, nil)
	tail, err := k.Tail(ctx, "records", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !tail.Partitions[0].Empty() || tail.Partitions[1].Empty() {
		t.Fatalf("partition 0 %+v (want empty), partition 1 %+v", tail.Partitions[0], tail.Partitions[1])
	}
	un := tail.Unfinished()
	if len(un) != 1 || un[0].RunID != "run-x" || len(un[0].Partitions) != 1 || un[0].Partitions[0] != 1 {
		t.Fatalf("unfinished %+v", un)
	}
}

func TestUnfinishedRuns(t *testing.T) {
	at := func(min int) time.Time { return time.Date(2026, 1, 1, 10, min, 0, 0, time.UTC) }
	msg := func(p int, kind schema.MarkerKind, run string, min int) TailMessage {
		m := TailMessage{Partition: p, Offset: 10, Time: at(min), Headers: map[string]string{}}
		if run != "" {
			m.Headers[schema.HeaderRunID] = run
		}
		if kind != "" {
			m.Key = []byte(schema.MarkerKey)
			m.Headers[schema.HeaderMarker] = string(kind)
		} else {
			m.Key = []byte(deviceID(p, 1))
		}
		return m
	}
	tail := &Tail{Partitions: []TailMessage{
		msg(0, schema.MarkerEnd, "done", 1),
		msg(1, schema.MarkerStart, "b", 5),
		msg(2, "", "b", 7),
		msg(3, "", "c", 2),
		msg(4, schema.MarkerAbort, "d", 9),
		msg(5, "", "", 9), // a foreign message: no run
		{Partition: 6, Offset: -1},
	}}
	un := tail.Unfinished()
	if len(un) != 2 || un[0].RunID != "b" || !un[0].LastWrite.Equal(at(7)) || len(un[0].Partitions) != 2 ||
		un[1].RunID != "c" || !un[1].LastWrite.Equal(at(2)) {
		t.Fatalf("unfinished %+v, want b (written at :07 on partitions 1, 2) then c", un)
	}
	if tail.Unchanged("E", "G") {
		t.Fatal("unchanged with mixed tails")
	}
	// A marker key without the marker header is not a marker.
	odd := TailMessage{Key: []byte(schema.MarkerKey), Headers: map[string]string{}}
	if odd.MarkerKind() != "" {
		t.Fatal("marker kind without header")
	}
	for i, kind := range []schema.MarkerKind{schema.MarkerStart, schema.MarkerEnd, schema.MarkerAbort} {
		if got := msg(i, kind, "r", 0).MarkerKind(); got != kind {
			t.Fatalf("MarkerKind = %q, want %q", got, kind)
		}
	}
}
