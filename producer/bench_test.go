package producer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// newBenchPart returns a partRun whose snapshot appends to a dry-run
// writer of 12 partitions.
func newBenchPart(tb testing.TB) *partRun {
	tb.Helper()
	m := newManifest(tb, 1)
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute, Manifest: m, Topic: "records", Partitions: 12, RunID: "0d8d8e0e-3c43-4d43-9f5e-2f1b1c1d1e1f"},
		newMemParts(nil), wire.Discard())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.main, err = wire.NewWriter(ctx, s.sink, s.writerConfig("records", 12, nil))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.main.Close(); cancel() })
	return &partRun{s: s, part: m.Parts[0], hPart: []byte("0"), keys: schema.NewKeys(nil)}
}

func benchLines(n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		// ~1 KB like the real export.
		lines[i] = []byte(strings.Replace(recordLine(0, i), `"OsPlatform"`, `"Pad":"`+strings.Repeat("x", 700)+`","OsPlatform"`, 1))
	}
	return lines
}

// TestBuildRecordZeroAllocs: turning a line into a record of its
// partition's batch allocates nothing once the batch buffers have grown.
func TestBuildRecordZeroAllocs(t *testing.T) {
	pr := newBenchPart(t)
	lines := benchLines(64)
	ctx := context.Background()
	var n int64
	add := func() {
		n++
		if err := pr.add(ctx, schema.Line{Number: n, Bytes: lines[n%64], Length: int64(len(lines[n%64]))}); err != nil {
			t.Fatal(err)
		}
	}
	for range 20000 { // grow the buffers of every partition
		add()
	}
	if allocs := testing.AllocsPerRun(5000, add); allocs != 0 {
		t.Fatalf("%.2f allocations per record, want 0", allocs)
	}
	if pr.records != n {
		t.Fatalf("%d records built of %d lines", pr.records, n)
	}
}

func BenchmarkBuildRecord(b *testing.B) {
	pr := newBenchPart(b)
	lines := benchLines(64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := lines[i%64]
		if err := pr.add(ctx, schema.Line{Number: int64(i + 1), Bytes: l, Length: int64(len(l))}); err != nil {
			b.Fatal(err)
		}
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
		s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute, Manifest: m, Topic: "records", Partitions: 6, RunID: "r", Workers: 2}, src, wire.Discard())
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
