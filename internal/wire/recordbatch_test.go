package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go/protocol"
)

// TestRecordBatchDecodesWithKafkaGo: the batches this package encodes are
// read back by kafka-go's own decoder with every codec: keys, values,
// headers, null values, producer id, epoch and base sequence.
func TestRecordBatchDecodesWithKafkaGo(t *testing.T) {
	for _, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(name, func(t *testing.T) {
			codec, err := compressionCodec(name)
			if err != nil {
				t.Fatal(err)
			}
			var b recordBatch
			b.firstTS = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
			for i := range 300 {
				hdrs := []Header{{"mde.line", []byte(fmt.Sprint(i))}, {"empty", []byte{}}}
				b.add(KindRecord, Position{0, int64(i)}, []byte(deviceID(0, i)), []byte(recordLine(0, i)), i%50 == 49, hdrs)
			}
			out, err := encodeBatch(nil, &b, codec, new(lz4.Compressor), ProducerID{id: 4242, epoch: 3}, 1000)
			if err != nil {
				t.Fatal(err)
			}
			batch := decodeWithKafkaGo(t, out)
			if batch.ProducerID != 4242 || batch.ProducerEpoch != 3 || batch.BaseSequence != 1000 {
				t.Fatalf("producer fields %d/%d/%d", batch.ProducerID, batch.ProducerEpoch, batch.BaseSequence)
			}
			for i := 0; ; i++ {
				r, err := batch.ReadRecord()
				if errors.Is(err, io.EOF) {
					if i != 300 {
						t.Fatalf("read %d records, want 300", i)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.Offset != int64(i) || !r.Time.Equal(time.UnixMilli(b.firstTS)) {
					t.Fatalf("record %d: offset %d time %v", i, r.Offset, r.Time)
				}
				key, _ := readAll(r.Key)
				val, null := readAll(r.Value)
				if string(key) != deviceID(0, i) || (i%50 == 49) != null || (!null && string(val) != recordLine(0, i)) {
					t.Fatalf("record %d: key %q value %q (null %v)", i, key, val, null)
				}
				if len(r.Headers) != 2 || string(r.Headers[0].Value) != fmt.Sprint(i) || r.Headers[1].Key != "empty" {
					t.Fatalf("record %d headers %v", i, r.Headers)
				}
				dec, err := b.record(i)
				if err != nil || string(dec.Key) != string(key) || dec.NullValue != null || len(dec.Headers) != 2 {
					t.Fatalf("record %d decoded by the batch itself: %+v, %v", i, dec, err)
				}
			}
		})
	}
}

// decodeWithKafkaGo reads an encoded batch (with its size prefix) with
// kafka-go's protocol decoder.
func decodeWithKafkaGo(t *testing.T, out []byte) *protocol.RecordBatch {
	t.Helper()
	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bytes.NewReader(out)); err != nil {
		t.Fatalf("kafka-go cannot read the batch: %v", err)
	}
	st, ok := rs.Records.(*protocol.RecordStream)
	if !ok || len(st.Records) != 1 {
		t.Fatalf("kafka-go read %T", rs.Records)
	}
	b, ok := st.Records[0].(*protocol.RecordBatch)
	if !ok {
		t.Fatalf("kafka-go read %T", st.Records[0])
	}
	return b
}

// readAll returns the bytes of a record's key or value; null is a null one.
func readAll(b protocol.Bytes) (v []byte, null bool) {
	if b == nil {
		return nil, true
	}
	defer b.Close()
	v, _ = io.ReadAll(b)
	return v, false
}

// TestObservedRecordDecodeZeroAllocs: telling the observer about an
// acknowledged record decodes its key and value without allocating.
func TestObservedRecordDecodeZeroAllocs(t *testing.T) {
	var b recordBatch
	line := []byte(recordLine(0, 1))
	hdrs := []Header{{"mde.part", []byte("0")}, {"mde.line", []byte("1")}}
	b.add(KindRecord, Position{0, 1}, []byte(deviceID(0, 1)), line, false, hdrs)
	var rec Record
	var last []byte
	allocs := testing.AllocsPerRun(1000, func() { rec, last, _ = b.keyValueLast(0) })
	if allocs != 0 || string(rec.Value) != string(line) || string(rec.Key) != deviceID(0, 1) || string(last) != "1" {
		t.Fatalf("%.1f allocations, key %q value %q, last header %q", allocs, rec.Key, rec.Value, last)
	}
}
