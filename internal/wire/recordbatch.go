package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go"
)

// Kafka's record batch (message format v2), written by this package so that
// every batch carries the producer id, epoch and base sequence of Kafka's
// idempotent-producer protocol; kafka-go's own encoder always writes -1
// there. kafka-go still does everything else: connections, TLS, SASL,
// metadata, routing to the partition leader (Client.RawProduce) and the
// compression codecs.
//
//	baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 (2)
//	crc uint32 (CRC-32C of everything after it) | attributes int16 | lastOffsetDelta int32
//	firstTimestamp int64 | maxTimestamp int64 | producerId int64 | producerEpoch int16
//	baseSequence int32 | records int32 | records…  (compressed as a whole when compressed)
//
// A record is: length varint | attributes int8 | timestampDelta varint |
// offsetDelta varint | key (varint length, -1 = null) | value (likewise) |
// header count varint | per header: key (varint length) and value (varint
// length, -1 = null). Varints are zigzag-encoded.
const (
	crcOffset  = 17 // the CRC covers attributes to the end
	attrOffset = 21
)

// Kind says what a record of a batch is, for the accounting and for
// what happens when the broker refuses it as too large.
type Kind uint8

// The kinds of record.
const (
	KindRecord     Kind = iota // an export line: counted in Records, observed, refusable
	KindMarker                 // a snapshot marker
	KindDeadLetter             // a dead-letter message
	KindMessage                // a KeyedWriter's message or tombstone
)

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// recordBatch holds the encoded, uncompressed records of one batch of one
// partition. It is reused: reset keeps the buffers.
type recordBatch struct {
	buf     []byte     // the encoded records
	starts  []int32    // start of each record in buf
	kinds   []Kind     // kind of each record
	pos     []Position // mde.part and mde.line of records and DLQ messages
	firstTS int64      // create time of the batch, Unix milliseconds
}

func (b *recordBatch) len() int  { return len(b.starts) }
func (b *recordBatch) size() int { return len(b.buf) }

func (b *recordBatch) reset() {
	b.buf, b.starts, b.kinds, b.pos = b.buf[:0], b.starts[:0], b.kinds[:0], b.pos[:0]
	b.firstTS = 0
}

// recordSize is the number of bytes a record with this key, value and
// headers occupies in a batch (at offset delta d), without its length
// prefix.
func recordSize(key, value []byte, nullValue bool, hdrs []Header, d int) int {
	n := 1 + 1 + varintLen(int64(d)) // attributes, timestamp delta 0, offset delta
	n += bytesLen(key, key == nil)
	n += bytesLen(value, nullValue)
	n += varintLen(int64(len(hdrs)))
	for i := range hdrs {
		n += varintLen(int64(len(hdrs[i].Key))) + len(hdrs[i].Key)
		n += bytesLen(hdrs[i].Value, false)
	}
	return n
}

// RecordBytes is the size by which Config.MaxMessageBytes bounds a record:
// its key, value and headers (names and values), without framing.
func RecordBytes(key, value []byte, hdrs []Header) int {
	n := len(key) + len(value)
	for i := range hdrs {
		n += len(hdrs[i].Key) + len(hdrs[i].Value)
	}
	return n
}

func bytesLen(b []byte, null bool) int {
	if null {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// Position is where an export line stands: mde.part and mde.line (zero
// for markers and table records).
type Position struct {
	Part int32
	Line int64
}

// add appends a record; nullValue writes a null value (a tombstone).
func (b *recordBatch) add(kind Kind, at Position, key, value []byte, nullValue bool, hdrs []Header) {
	d := len(b.starts)
	b.starts = append(b.starts, int32(len(b.buf)))
	b.kinds = append(b.kinds, kind)
	b.pos = append(b.pos, at)
	buf := b.buf
	buf = binary.AppendVarint(buf, int64(recordSize(key, value, nullValue, hdrs, d)))
	buf = append(buf, 0)                     // attributes
	buf = binary.AppendVarint(buf, 0)        // timestamp delta: the batch's create time
	buf = binary.AppendVarint(buf, int64(d)) // offset delta
	buf = appendBytes(buf, key, key == nil)  //
	buf = appendBytes(buf, value, nullValue) //
	buf = binary.AppendVarint(buf, int64(len(hdrs)))
	for i := range hdrs {
		buf = binary.AppendVarint(buf, int64(len(hdrs[i].Key)))
		buf = append(buf, hdrs[i].Key...)
		buf = appendBytes(buf, hdrs[i].Value, false)
	}
	b.buf = buf
}

func appendBytes(buf, v []byte, null bool) []byte {
	if null {
		return binary.AppendVarint(buf, -1)
	}
	buf = binary.AppendVarint(buf, int64(len(v)))
	return append(buf, v...)
}

// Record is a record read back from a batch (splitting a batch the
// broker refused, building the dead-letter message of a refused record).
// Its slices alias the batch's buffer.
type Record struct {
	Key, Value []byte
	NullValue  bool
	Headers    []Header
}

// record decodes record i of the batch.
func (b *recordBatch) record(i int) (Record, error) {
	r, _, err := b.decode(i, true, false)
	return r, err
}

// keyValue decodes the key and value of record i only: no allocation (the
// observer's path, once per acknowledged record).
// keyValueLast decodes record i's key and value and the value of its last
// header, without allocating.
func (b *recordBatch) keyValueLast(i int) (Record, []byte, error) { return b.decode(i, false, true) }

func (b *recordBatch) decode(i int, withHeaders, last bool) (Record, []byte, error) {
	end := len(b.buf)
	if i+1 < len(b.starts) {
		end = int(b.starts[i+1])
	}
	p := b.buf[b.starts[i]:end]
	var r Record
	var err error
	next := func() int64 {
		v, n := binary.Varint(p)
		if n <= 0 {
			err = errors.New("truncated record")
			return 0
		}
		p = p[n:]
		return v
	}
	bytesField := func() ([]byte, bool) {
		n := next()
		if err != nil {
			return nil, false
		}
		if n < 0 {
			return nil, true
		}
		if int(n) > len(p) {
			err = errors.New("truncated record")
			return nil, false
		}
		v := p[:n:n]
		p = p[n:]
		return v, false
	}
	next() // length
	if err != nil || len(p) < 1 {
		return r, nil, fmt.Errorf("record %d: truncated", i)
	}
	p = p[1:] // attributes
	next()    // timestamp delta
	next()    // offset delta
	r.Key, _ = bytesField()
	r.Value, r.NullValue = bytesField()
	nh := next()
	if !withHeaders && !last {
		nh = 0
	}
	var lastValue []byte
	for j := int64(0); j < nh && err == nil; j++ {
		k, _ := bytesField()
		v, _ := bytesField()
		if withHeaders {
			r.Headers = append(r.Headers, Header{Key: string(k), Value: v})
		}
		lastValue = v
	}
	if err != nil {
		return r, nil, fmt.Errorf("record %d: %w", i, err)
	}
	return r, lastValue, nil
}

// appendWriter is an io.Writer appending to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// ProducerID identifies an idempotent producer (InitProducerId).
type ProducerID struct {
	id    int64
	epoch int16
}

// encodeBatch writes the record batch of b, compressed with codec (0 =
// none), with producer id, epoch and base sequence, into dst[:0], behind
// the int32 size prefix of the produce request's records field (kafka-go's
// RawRecordSet is copied to the request as it is). lz4 is written by
// appendLZ4Frame with c; the other codecs are kafka-go's.
func encodeBatch(dst []byte, b *recordBatch, codec kafka.Compression, c *lz4.Compressor, pid ProducerID, baseSeq int32) ([]byte, error) {
	n := b.len()
	if n == 0 {
		return dst[:0], errors.New("empty batch")
	}
	out := dst[:0]
	out = binary.BigEndian.AppendUint32(out, 0)                 // records field size, below
	out = binary.BigEndian.AppendUint64(out, 0)                 // base offset
	out = binary.BigEndian.AppendUint32(out, 0)                 // batch length, below
	out = binary.BigEndian.AppendUint32(out, 0xffffffff)        // partition leader epoch -1
	out = append(out, 2)                                        // magic
	out = binary.BigEndian.AppendUint32(out, 0)                 // crc, below
	out = binary.BigEndian.AppendUint16(out, uint16(codec)&7)   // attributes: codec, CreateTime
	out = binary.BigEndian.AppendUint32(out, uint32(n-1))       // last offset delta
	out = binary.BigEndian.AppendUint64(out, uint64(b.firstTS)) // first timestamp
	out = binary.BigEndian.AppendUint64(out, uint64(b.firstTS)) // max timestamp
	out = binary.BigEndian.AppendUint64(out, uint64(pid.id))
	out = binary.BigEndian.AppendUint16(out, uint16(pid.epoch))
	out = binary.BigEndian.AppendUint32(out, uint32(baseSeq))
	out = binary.BigEndian.AppendUint32(out, uint32(n))
	switch codec {
	case 0:
		out = append(out, b.buf...)
	case kafka.Lz4:
		var err error
		if out, err = appendLZ4Frame(out, b.buf, c); err != nil {
			return dst[:0], err
		}
	default:
		w := &appendWriter{b: out}
		cw := codec.Codec().NewWriter(w)
		if _, err := cw.Write(b.buf); err != nil {
			return dst[:0], fmt.Errorf("compressing a record batch (%s): %w", codec, err)
		}
		if err := cw.Close(); err != nil {
			return dst[:0], fmt.Errorf("compressing a record batch (%s): %w", codec, err)
		}
		out = w.b
	}
	batch := out[4:]
	binary.BigEndian.PutUint32(out, uint32(len(batch)))
	binary.BigEndian.PutUint32(batch[8:], uint32(len(batch)-12))
	binary.BigEndian.PutUint32(batch[crcOffset:], crc32.Checksum(batch[attrOffset:], castagnoli))
	return out, nil
}

// bytesReader is an io.Reader over a byte slice that can be rewound; one is
// reused by every attempt of a produce request.
type bytesReader struct {
	b   []byte
	off int
}

func (r *bytesReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}
