package table

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// benchTable is a loaded table of n devices (version 1 lines) in 6
// partitions, without a broker.
func benchTable(b *testing.B, n int) (*Table, [][2][]byte) {
	b.Helper()
	tb, err := New(Config{Topic: "t", RunID: "r", Client: &kafka.Client{}, Writer: &failingWriter{}, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	tb.n = 6
	tb.parts = make([]partState, tb.n)
	logs := make([][]logEntry, tb.n)
	lines := make([][2][]byte, n)
	for i := range n {
		id, v := device(i, 1)
		lines[i] = [2][]byte{[]byte(id), []byte(v)}
		did, _ := hexID(lines[i][0])
		p := schema.Partition(lines[i][0], tb.n)
		logs[p] = append(logs[p], logEntry{entry{id: did, d: tb.hash.sum(lines[i][1])}, uint32(len(logs[p]))})
	}
	for p := range tb.parts {
		if err := tb.parts[p].build(logs[p]); err != nil {
			b.Fatal(err)
		}
	}
	tb.loaded = true
	b.Cleanup(tb.Close)
	return tb, lines
}

// BenchmarkRecordUnchanged is the cost the table adds to every record of
// a snapshot whose device did not change: digest, partition, lookup, claim.
func BenchmarkRecordUnchanged(b *testing.B) {
	tb, lines := benchTable(b, 200000)
	b.SetBytes(int64(len(lines[0][1])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := lines[i%len(lines)]
		if i >= len(lines) && i%len(lines) == 0 {
			b.StopTimer()
			for p := range tb.parts {
				for j := range tb.parts[p].entries {
					tb.parts[p].entries[j].claim = 0
				}
			}
			b.StartTimer()
		}
		if err := tb.Record(0, int64(i%len(lines))+1, l[0], l[1]); err != nil {
			b.Fatal(err)
		}
	}
}
