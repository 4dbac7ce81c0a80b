package table

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/rs/zerolog"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// benchTable is a loaded table of n devices in 6 partitions, without a
// broker. Device i's line is values[i%len(values)]: 1,000 distinct lines of
// about 1.2 KB (the size of Defender's), so that the lines stay in the
// cache as a snapshot's do (each was just decoded) while the state is as
// large as n devices make it.
func benchTable(b *testing.B, n int) (tb *Table, keys, values [][]byte) {
	b.Helper()
	tb, err := New(Config{Topic: "t", RunID: "r", Kafka: &wire.Kafka{}, Writer: &failingWriter{}, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	tb.n = 6
	tb.parts = make([]partState, tb.n)
	logs := make([][]logEntry, tb.n)
	for i := range 1000 {
		pad := bytes.Repeat([]byte("x"), 1150)
		values = append(values, fmt.Appendf(nil, `{"DeviceName":"host-%d","DeviceGatheredInfo":"%s"}`, i, pad))
	}
	keys = make([][]byte, n)
	for i := range n {
		h := sha1.Sum(fmt.Append(nil, "device-", i))
		keys[i] = []byte(hex.EncodeToString(h[:]))
		did, _ := hexID(keys[i])
		p := schema.Partition(keys[i], tb.n)
		logs[p] = append(logs[p], logEntry{entry{id: did, d: tb.hash.sum(values[i%len(values)])}, uint64(len(logs[p]))})
	}
	for p := range tb.parts {
		if err := tb.parts[p].build(logs[p], func() {}, nil); err != nil {
			b.Fatal(err)
		}
	}
	tb.loaded = true
	b.Cleanup(tb.Close)
	return tb, keys, values
}

// BenchmarkRecordUnchanged is the cost the table adds to every record of
// a snapshot whose device did not change — digest, partition, lookup,
// claim — with 1,000,000 devices in the table.
func BenchmarkRecordUnchanged(b *testing.B) {
	tb, keys, values := benchTable(b, 1000000)
	b.SetBytes(int64(len(values[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(keys)
		if i >= len(keys) && k == 0 {
			b.StopTimer()
			for p := range tb.parts {
				for j := range tb.parts[p].entries {
					tb.parts[p].entries[j].claim = 0
				}
			}
			b.StartTimer()
		}
		if err := tb.Record(0, int64(k)+1, keys[k], keys[k], values[k%len(values)]); err != nil {
			b.Fatal(err)
		}
	}
	if got := tb.unchanged.Load(); got != int64(b.N) {
		b.Fatalf("%d of %d records unchanged", got, b.N)
	}
}
