package producer

import (
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// newBenchPart returns a partRun and a batch for building messages.
func newBenchPart(tb testing.TB) (*partRun, *batch) {
	tb.Helper()
	m := newManifest(tb, 1)
	s, err := NewSnapshot(SnapshotConfig{Manifest: m, Topic: "records", DLQTopic: "dlq", Partitions: 12, RunID: "0d8d8e0e-3c43-4d43-9f5e-2f1b1c1d1e1f"},
		newMemParts(nil), Discard())
	if err != nil {
		tb.Fatal(err)
	}
	pr := &partRun{s: s, part: m.Parts[0], hPart: []byte("0")}
	return pr, s.getBatch()
}

func benchLines(n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		// ~1 KB like the real export.
		lines[i] = []byte(strings.Replace(recordLine(0, i), `"OsPlatform"`, `"Pad":"`+strings.Repeat("x", 700)+`","OsPlatform"`, 1))
	}
	return lines
}

// TestBuildRecordZeroAllocs: turning a line into a record message
// allocates nothing once the batch buffers have grown.
func TestBuildRecordZeroAllocs(t *testing.T) {
	pr, b := newBenchPart(t)
	lines := benchLines(64)
	var n int64
	add := func() {
		if len(b.msgs) >= pr.s.batchRecords || len(b.arena) >= pr.s.batchBytes {
			b.reset()
		}
		n++
		pr.add(b, schema.Line{Number: n, Bytes: lines[n%64], Length: int64(len(lines[n%64]))})
	}
	for range 3 * pr.s.batchRecords { // grow the buffers
		add()
	}
	if allocs := testing.AllocsPerRun(5000, add); allocs != 0 {
		t.Fatalf("%.2f allocations per record, want 0", allocs)
	}
	if len(b.msgs) == 0 || b.records != int64(len(b.msgs)) {
		t.Fatalf("batch holds %d messages, %d records", len(b.msgs), b.records)
	}
}

func BenchmarkBuildRecord(b *testing.B) {
	pr, bt := newBenchPart(b)
	lines := benchLines(256)
	b.ReportAllocs()
	b.SetBytes(int64(len(lines[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(bt.msgs) >= pr.s.batchRecords || len(bt.arena) >= pr.s.batchBytes {
			bt.reset()
		}
		l := lines[i%len(lines)]
		pr.add(bt, schema.Line{Number: int64(i + 1), Bytes: l, Length: int64(len(l))})
	}
}

func BenchmarkBalancer(b *testing.B) {
	bal := &Balancer{Topic: "records"}
	parts := []int{0, 1, 2, 3, 4, 5}
	rec := kafka.Message{Topic: "records", Partition: 3, Key: []byte(deviceID(0, 1))}
	dlq := kafka.Message{Topic: "dlq", Key: []byte(deviceID(0, 2))}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if bal.Balance(rec, parts...) != 3 {
			b.Fatal("wrong partition")
		}
		_ = bal.Balance(dlq, parts...)
	}
}

// BenchmarkPipelineDiscard runs whole snapshots (framing, DeviceId,
// message building, batching) into the dry-run sink.
func BenchmarkPipelineDiscard(b *testing.B) {
	const parts, perPart = 4, 5000
	m := newManifest(b, parts)
	contents := map[int]string{}
	var size int64
	for p := range parts {
		var sb strings.Builder
		for _, l := range benchLines(perPart) {
			sb.Write(l)
			sb.WriteByte('\n')
		}
		contents[p] = sb.String()
		size += int64(sb.Len())
	}
	src := newMemParts(contents)
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := NewSnapshot(SnapshotConfig{Manifest: m, Topic: "records", Partitions: 6, RunID: "r", Workers: 2}, src, Discard())
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Run(context.Background())
		if err != nil || res.Records != parts*perPart {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric(float64(parts*perPart*b.N)/b.Elapsed().Seconds(), "records/s")
}
