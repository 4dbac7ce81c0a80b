package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
)

// Record batches (message format v2) as a fetch response carries them:
//
//	baseOffset int64, batchLength int32, partitionLeaderEpoch int32,
//	magic int8 (2), crc uint32 (CRC-32C of what follows), attributes int16,
//	lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64,
//	producerId int64, producerEpoch int16, baseSequence int32,
//	recordCount int32, records (compressed as attributes say)
//
// and each record: length varint, attributes int8, timestampDelta varlong,
// offsetDelta varint, key (varint length, -1 for null), value (likewise),
// header count varint, headers (key and value as above).
const (
	batchHeaderSize = 61
	batchCRCFrom    = 21 // the CRC covers attributes to the end
	magicAt         = 16

	attrCodec      = 0x07
	attrLogAppend  = 0x08
	attrControl    = 0x20
	codecNone      = 0
	codecLZ4       = 3
	maxRecordCount = 1 << 28
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt reports a batch or record that cannot be decoded.
var errCorrupt = errors.New("corrupt record batch")

// record is one record as decoded: slices into the fetch response or the
// decoder's buffer, valid until the next batch.
type record struct {
	offset   int64
	time     int64 // milliseconds since the epoch
	key      []byte
	value    []byte
	headers  []byte // the encoded headers
	nHeaders int
}

// decoder decodes record batches; its buffers are reused from batch to
// batch. One per goroutine.
type decoder struct {
	out []byte // a compressed batch's records, decompressed
	rec record
}

// each calls fn for every record of the complete record batches in b, in
// offset order; control batches (transaction markers) are skipped. A
// partial batch at the end of b (a fetch response is cut at its size
// limit) is ignored. It returns the offset after the last complete batch,
// or -1 when b holds none. An error returned by fn ends it and is returned
// as it is.
func (d *decoder) each(b []byte, fn func(*record) error) (next int64, err error) {
	next = -1
	for len(b) >= 17 {
		size := int64(int32(binary.BigEndian.Uint32(b[8:]))) + 12
		if size < magicAt+1 {
			return next, fmt.Errorf("%w: batch length %d", errCorrupt, size-12)
		}
		if size > int64(len(b)) {
			break // partial
		}
		batch := b[:size]
		b = b[size:]
		if batch[magicAt] != 2 {
			// Message format v0/v1 (written before Kafka 0.11): rare
			// enough to be left to kafka-go's decoder, from here on.
			return d.legacy(append(batch[:len(batch):len(batch)], b...), fn, next)
		}
		if len(batch) < batchHeaderSize {
			return next, fmt.Errorf("%w: %d bytes", errCorrupt, len(batch))
		}
		if crc := binary.BigEndian.Uint32(batch[17:]); crc32.Checksum(batch[batchCRCFrom:], castagnoli) != crc {
			return next, fmt.Errorf("%w: CRC mismatch at offset %d", errCorrupt, int64(binary.BigEndian.Uint64(batch)))
		}
		if err := d.batch(batch, fn); err != nil {
			return next, err
		}
		next = int64(binary.BigEndian.Uint64(batch)) + int64(int32(binary.BigEndian.Uint32(batch[23:]))) + 1
	}
	return next, nil
}

// batch decodes one complete v2 batch whose CRC was checked.
func (d *decoder) batch(batch []byte, fn func(*record) error) error {
	base := int64(binary.BigEndian.Uint64(batch))
	attrs := binary.BigEndian.Uint16(batch[21:])
	if attrs&attrControl != 0 {
		return nil
	}
	baseTime := int64(binary.BigEndian.Uint64(batch[27:]))
	maxTime := int64(binary.BigEndian.Uint64(batch[35:]))
	count := int32(binary.BigEndian.Uint32(batch[57:]))
	if count < 0 || count > maxRecordCount {
		return fmt.Errorf("%w: %d records at offset %d", errCorrupt, count, base)
	}
	recs := batch[batchHeaderSize:]
	if codec := int(attrs & attrCodec); codec != codecNone {
		var err error
		if d.out, err = decompress(d.out[:0], recs, codec); err != nil {
			return fmt.Errorf("%w: offset %d: %w", errCorrupt, base, err)
		}
		recs = d.out
	}
	r := &d.rec
	for range count {
		if err := nextRecord(&recs, r); err != nil {
			return fmt.Errorf("offset %d: %w", base, err)
		}
		r.offset += base
		if attrs&attrLogAppend != 0 {
			r.time = maxTime
		} else {
			r.time += baseTime
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// nextRecord decodes the record at the start of *b into r (offset and time
// as deltas) and advances *b past it.
func nextRecord(b *[]byte, r *record) error {
	p := *b
	size, n := binary.Varint(p)
	if n <= 0 || size < 0 || size > int64(len(p)-n) {
		return fmt.Errorf("%w: record length", errCorrupt)
	}
	rec := p[n : n+int(size)]
	*b = p[n+int(size):]
	if len(rec) < 1 {
		return fmt.Errorf("%w: empty record", errCorrupt)
	}
	rec = rec[1:] // attributes: unused
	var ok bool
	var delta int64
	if delta, rec, ok = varint(rec); !ok {
		return fmt.Errorf("%w: timestamp", errCorrupt)
	}
	r.time = delta
	if delta, rec, ok = varint(rec); !ok {
		return fmt.Errorf("%w: offset", errCorrupt)
	}
	r.offset = delta
	if r.key, rec, ok = nullableBytes(rec); !ok {
		return fmt.Errorf("%w: key", errCorrupt)
	}
	if r.value, rec, ok = nullableBytes(rec); !ok {
		return fmt.Errorf("%w: value", errCorrupt)
	}
	var nh int64
	if nh, rec, ok = varint(rec); !ok || nh < 0 || nh > int64(len(rec)) {
		return fmt.Errorf("%w: header count", errCorrupt)
	}
	r.headers, r.nHeaders = rec, int(nh)
	return nil
}

func varint(b []byte) (int64, []byte, bool) {
	v, n := binary.Varint(b)
	if n <= 0 {
		return 0, nil, false
	}
	return v, b[n:], true
}

// nullableBytes decodes a varint length (-1: null) and the bytes.
func nullableBytes(b []byte) ([]byte, []byte, bool) {
	l, b, ok := varint(b)
	switch {
	case !ok || l < -1 || l > int64(len(b)):
		return nil, nil, false
	case l == -1:
		return nil, b, true
	}
	return b[:l:l], b[l:], true
}

// header returns the value of the last header named key among the n
// encoded headers h.
func findHeader(h []byte, n int, key string) (value []byte, found bool) {
	for range n {
		k, rest, ok := nullableBytes(h)
		if !ok {
			return nil, false
		}
		v, rest, ok := nullableBytes(rest)
		if !ok {
			return nil, false
		}
		if string(k) == key {
			value, found = v, true
		}
		h = rest
	}
	return value, found
}

// decompress appends the decompressed src (compressed with the batch
// codec) to dst.
func decompress(dst, src []byte, codec int) ([]byte, error) {
	if codec == codecLZ4 {
		if out, ok, err := lz4Frame(dst, src); ok {
			return out, err
		}
	}
	c := compress.Compression(codec).Codec()
	if c == nil {
		return dst, fmt.Errorf("unknown compression codec %d", codec)
	}
	r := c.NewReader(bytes.NewReader(src))
	defer r.Close()
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// LZ4 frame format (lz4.org): magic, FLG, BD, optional content size and
// dictionary id, header checksum; blocks of a 4-byte little-endian size
// (high bit: stored uncompressed), each followed by a checksum when FLG
// says so; an end mark 0; an optional content checksum.
const (
	lz4Magic        = 0x184D2204
	lz4Independent  = 0x20
	lz4BlockSum     = 0x10
	lz4ContentSize  = 0x08
	lz4DictID       = 0x01
	lz4Uncompressed = 0x80000000
	lz4Window       = 64 << 10
)

// lz4Frame decodes the LZ4 frame src, appending to dst, block by block
// straight into dst (no intermediate block buffer). ok is false for a
// frame it does not handle (a dictionary id): the caller uses a general
// reader then. The checksums are not verified: the batch's CRC-32C covers
// the compressed bytes.
func lz4Frame(dst, src []byte) (out []byte, ok bool, err error) {
	if len(src) < 7 || binary.LittleEndian.Uint32(src) != lz4Magic {
		return dst, true, errors.New("lz4: not a frame")
	}
	flg, bd := src[4], src[5]
	if flg>>6 != 1 || flg&lz4DictID != 0 {
		return dst, false, nil
	}
	var blockMax int
	switch (bd >> 4) & 7 {
	case 4:
		blockMax = 64 << 10
	case 5:
		blockMax = 256 << 10
	case 6:
		blockMax = 1 << 20
	case 7:
		blockMax = 4 << 20
	default:
		return dst, true, errors.New("lz4: bad block size")
	}
	p := src[6:]
	if flg&lz4ContentSize != 0 {
		if len(p) < 8 {
			return dst, true, io.ErrUnexpectedEOF
		}
		p = p[8:]
	}
	if len(p) < 1 {
		return dst, true, io.ErrUnexpectedEOF
	}
	p = p[1:] // header checksum
	for {
		if len(p) < 4 {
			return dst, true, io.ErrUnexpectedEOF
		}
		size := binary.LittleEndian.Uint32(p)
		p = p[4:]
		if size == 0 {
			return dst, true, nil // end mark; a content checksum may follow
		}
		n := int(size &^ lz4Uncompressed)
		if n > len(p) || n > blockMax {
			return dst, true, io.ErrUnexpectedEOF
		}
		block := p[:n]
		p = p[n:]
		if flg&lz4BlockSum != 0 {
			if len(p) < 4 {
				return dst, true, io.ErrUnexpectedEOF
			}
			p = p[4:]
		}
		if size&lz4Uncompressed != 0 {
			dst = append(dst, block...)
			continue
		}
		if cap(dst)-len(dst) < blockMax {
			grown := make([]byte, len(dst), max(2*cap(dst), len(dst)+blockMax))
			copy(grown, dst)
			dst = grown
		}
		var m int
		if flg&lz4Independent != 0 {
			m, err = lz4.UncompressBlock(block, dst[len(dst):len(dst)+blockMax])
		} else {
			dict := dst[max(0, len(dst)-lz4Window):]
			m, err = lz4.UncompressBlockWithDict(block, dst[len(dst):len(dst)+blockMax], dict)
		}
		if err != nil {
			return dst, true, fmt.Errorf("lz4: %w", err)
		}
		dst = dst[:len(dst)+m]
	}
}

// legacy decodes message sets of format v0/v1 (and any batches after them)
// with kafka-go's decoder; next is the offset after the batches decoded
// before.
func (d *decoder) legacy(b []byte, fn func(*record) error, next int64) (int64, error) {
	framed := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bytes.NewReader(append(framed, b...))); err != nil {
		return next, fmt.Errorf("%w: message set: %w", errCorrupt, err)
	}
	if rs.Records == nil {
		return next, nil
	}
	defer func() {
		if c, ok := rs.Records.(io.Closer); ok {
			_ = c.Close()
		}
	}()
	for {
		pr, err := rs.Records.ReadRecord()
		if err == io.EOF {
			return next, nil
		}
		if err != nil {
			return next, fmt.Errorf("%w: message set: %w", errCorrupt, err)
		}
		r := &d.rec
		*r = record{offset: pr.Offset, time: pr.Time.UnixMilli()}
		if pr.Key != nil {
			if r.key, err = protocol.ReadAll(pr.Key); err == nil && r.key == nil {
				r.key = []byte{}
			}
		}
		if err == nil && pr.Value != nil {
			if r.value, err = protocol.ReadAll(pr.Value); err == nil && r.value == nil {
				r.value = []byte{}
			}
		}
		if err != nil {
			return next, fmt.Errorf("%w: message set: %w", errCorrupt, err)
		}
		for _, h := range pr.Headers {
			r.headers = binary.AppendVarint(r.headers, int64(len(h.Key)))
			r.headers = append(r.headers, h.Key...)
			r.headers = binary.AppendVarint(r.headers, int64(len(h.Value)))
			r.headers = append(r.headers, h.Value...)
			r.nHeaders++
		}
		if err := fn(r); err != nil {
			return next, err
		}
		next = pr.Offset + 1
	}
}
