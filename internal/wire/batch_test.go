package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"testing"
	"time"

	"github.com/pierrec/lz4/v4"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRecord is what a test writes into a batch and expects back.
type testRecord struct {
	offsetDelta int32
	timeDelta   int64
	key, value  []byte
	headers     []kmsg.Header
}

// kmsgBatch encodes a v2 record batch with franz-go's kmsg types (an
// encoder independent of the decoder under test), compressing the records
// with codec (compressed by kafka-go's codecs, or by frame for LZ4 when
// frame is set).
func kmsgBatch(t testing.TB, base int64, attrs int16, lastDelta int32, recs []testRecord, frame func([]byte) []byte) []byte {
	t.Helper()
	var raw []byte
	for _, r := range recs {
		kr := kmsg.Record{TimestampDelta64: r.timeDelta, OffsetDelta: r.offsetDelta, Key: r.key, Value: r.value, Headers: r.headers}
		body := kr.AppendTo(nil)[1:] // Length 0 encodes as one byte
		raw = binary.AppendVarint(raw, int64(len(body)))
		raw = append(raw, body...)
	}
	switch codec := int(attrs & attrCodec); {
	case frame != nil:
		raw = frame(raw)
	case codec != codecNone:
		var buf bytes.Buffer
		w := compress.Compression(codec).Codec().NewWriter(&buf)
		if _, err := w.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		raw = buf.Bytes()
	}
	rb := kmsg.RecordBatch{
		FirstOffset: base, Magic: 2, Attributes: attrs, LastOffsetDelta: lastDelta,
		FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_009_000,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: raw,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[batchCRCFrom:], castagnoli))
	return b
}

func someRecords(n int) []testRecord {
	var out []testRecord
	for i := range n {
		r := testRecord{offsetDelta: int32(i), timeDelta: int64(i), key: fmt.Appendf(nil, "k%d", i),
			headers: []kmsg.Header{{Key: "h", Value: fmt.Append(nil, i)}, {Key: "other", Value: nil}}}
		if i%5 != 4 {
			r.value = bytes.Repeat(fmt.Appendf(nil, "v%d;", i), 1+i%40)
		}
		out = append(out, r)
	}
	return out
}

// collect decodes b and returns its records as Messages would show them.
func collect(t *testing.T, b []byte) ([]testRecord, []int64, int64, error) {
	t.Helper()
	var d decoder
	var got []testRecord
	var offsets []int64
	next, err := d.each(b, func(r *record) error {
		tr := testRecord{key: bytes.Clone(r.key), value: bytes.Clone(r.value), timeDelta: r.time - 1_700_000_000_000}
		if r.key == nil {
			tr.key = nil
		}
		if r.value == nil {
			tr.value = nil
		}
		if v, ok := findHeader(r.headers, r.nHeaders, "h"); ok {
			tr.headers = []kmsg.Header{{Key: "h", Value: bytes.Clone(v)}}
		}
		got = append(got, tr)
		offsets = append(offsets, r.offset)
		return nil
	})
	return got, offsets, next, err
}

func TestDecodeBatchesOfEveryCodec(t *testing.T) {
	recs := someRecords(300)
	for codec := range 5 {
		t.Run(compress.Compression(codec).String(), func(t *testing.T) {
			b := kmsgBatch(t, 1000, int16(codec), 299, recs[:100], nil)
			b = append(b, kmsgBatch(t, 1100, int16(codec), 199, recs[:200], nil)...)
			got, offsets, next, err := collect(t, b)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 300 || next != 1300 {
				t.Fatalf("%d records, next offset %d", len(got), next)
			}
			for i, g := range got {
				w, off := recs[i], int64(1000+i)
				if i >= 100 {
					w, off = recs[i-100], int64(1100+i-100)
				}
				if offsets[i] != off || !bytes.Equal(g.key, w.key) || !bytes.Equal(g.value, w.value) || (g.value == nil) != (w.value == nil) ||
					len(g.headers) != 1 || !bytes.Equal(g.headers[0].Value, w.headers[0].Value) || g.timeDelta != w.timeDelta {
					t.Fatalf("record %d at %d: got %q=%q %v, want %q=%q at %d", i, offsets[i], g.key, g.value, g.headers, w.key, w.value, off)
				}
			}
		})
	}
}

// TestDecodeLZ4Frames covers the frame options other writers use: block
// and content checksums, the content size, linked blocks, large blocks,
// stored blocks.
func TestDecodeLZ4Frames(t *testing.T) {
	recs := someRecords(400)
	for _, tc := range []struct {
		name   string
		opts   []lz4.Option
		linked bool
	}{
		{"default", nil, false},
		{"checksums", []lz4.Option{lz4.BlockChecksumOption(true), lz4.ChecksumOption(true)}, false},
		{"content size 4 MB blocks", []lz4.Option{lz4.BlockSizeOption(lz4.Block4Mb)}, false},
		{"64 KB blocks", []lz4.Option{lz4.BlockSizeOption(lz4.Block64Kb)}, false},
		{"flagged as linked", []lz4.Option{lz4.BlockSizeOption(lz4.Block64Kb)}, true},
		{"stored", []lz4.Option{lz4.BlockSizeOption(lz4.Block64Kb)}, false}, // an incompressible tail after the records
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := func(raw []byte) []byte {
				var buf bytes.Buffer
				w := lz4.NewWriter(&buf)
				opts := tc.opts
				if tc.name == "content size 4 MB blocks" {
					opts = append(opts, lz4.SizeOption(uint64(len(raw))))
				}
				if err := w.Apply(opts...); err != nil {
					t.Fatal(err)
				}
				if tc.name == "stored" {
					raw = append(raw[:len(raw):len(raw)], randomBytes(200_000)...) // incompressible tail
				}
				if _, err := w.Write(raw); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				out := buf.Bytes()
				if tc.linked {
					out[4] &^= lz4Independent
				}
				return out
			}
			var d decoder
			b := kmsgBatch(t, 0, codecLZ4, 399, recs, frame)
			n := 0
			if _, err := d.each(b, func(r *record) error {
				if !bytes.Equal(r.key, recs[n].key) || !bytes.Equal(r.value, recs[n].value) {
					return fmt.Errorf("record %d: %q=%q", n, r.key, r.value)
				}
				n++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if n != len(recs) {
				t.Fatalf("%d records", n)
			}
		})
	}
	// What the frame decoder reads is what kafka-go's reader reads.
	raw := bytes.Repeat([]byte("abcdefgh"), 100_000)
	raw = append(raw, randomBytes(100_000)...)
	var buf bytes.Buffer
	w := lz4.NewWriter(&buf)
	_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.BlockChecksumOption(true))
	_, _ = w.Write(raw)
	_ = w.Close()
	got, ok, err := lz4Frame(nil, buf.Bytes())
	if !ok || err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("frame: ok %v, err %v, %d of %d bytes equal", ok, err, len(got), len(raw))
	}
	for _, bad := range [][]byte{buf.Bytes()[:3], buf.Bytes()[:len(buf.Bytes())/2], append([]byte{0, 1, 2, 3}, buf.Bytes()[4:]...)} {
		if _, ok, err := lz4Frame(nil, bad); ok && err == nil {
			t.Fatalf("%d bytes of a broken frame decoded", len(bad))
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func TestDecodePartialControlAndCompactedBatches(t *testing.T) {
	recs := someRecords(50)
	first := kmsgBatch(t, 0, codecLZ4, 49, recs, nil)
	// A compacted batch: records 3 and 9 of offsets 100..119 are left.
	compacted := kmsgBatch(t, 100, 0, 19, []testRecord{
		{offsetDelta: 3, key: []byte("a"), value: []byte("1")}, {offsetDelta: 9, key: []byte("b"), value: []byte("2")},
	}, nil)
	control := kmsgBatch(t, 120, attrControl, 0, []testRecord{{key: []byte{0, 0, 0, 0}, value: []byte{0, 0, 0, 0, 0, 0}}}, nil)
	partial := kmsgBatch(t, 121, 0, 9, recs[:10], nil)
	b := append(append(append(bytes.Clone(first), compacted...), control...), partial[:len(partial)-7]...)
	got, offsets, next, err := collect(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 52 || offsets[50] != 103 || offsets[51] != 109 || next != 121 {
		t.Fatalf("%d records, offsets %v, next %d", len(got), offsets[48:], next)
	}

	// Empty, and only a partial batch: nothing, next -1.
	for _, b := range [][]byte{nil, partial[:30], partial[:len(partial)-1]} {
		if got, _, next, err := collect(t, b); err != nil || len(got) != 0 || next != -1 {
			t.Fatalf("%d bytes: %d records, next %d, %v", len(b), len(got), next, err)
		}
	}
}

func TestDecodeRefusesCorruptBatches(t *testing.T) {
	recs := someRecords(20)
	good := kmsgBatch(t, 0, 0, 19, recs, nil)
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x40
		return b
	}
	recomputed := func(b []byte) []byte {
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[batchCRCFrom:], castagnoli))
		return b
	}
	short := bytes.Clone(good[:40])
	binary.BigEndian.PutUint32(short[8:], 28)
	for name, b := range map[string][]byte{
		"crc":             flip(len(good) - 3),
		"record length":   recomputed(flip(batchHeaderSize)),
		"record count":    recomputed(func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[57:], 21); return b }()),
		"short batch":     short,
		"lz4 not frame":   recomputed(func() []byte { b := bytes.Clone(good); b[22] |= codecLZ4; return b }()),
		"unknown codec":   recomputed(func() []byte { b := bytes.Clone(good); b[22] |= 6; return b }()),
		"negative count":  recomputed(func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[57:], 0xffffffff); return b }()),
		"negative length": func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[8:], 0xfffffff0); return b }(),
		"tiny length":     func() []byte { b := bytes.Clone(good); binary.BigEndian.PutUint32(b[8:], 2); return b }(),
	} {
		if _, _, _, err := collect(t, b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want a corrupt batch error", name, err)
		}
	}
}

// TestDecodeLegacyMessageSets: message format v1 (brokers before 0.11
// wrote it) is left to kafka-go's decoder.
func TestDecodeLegacyMessageSets(t *testing.T) {
	for _, codec := range []compress.Compression{compress.None, compress.Gzip} {
		var msgs []protocol.Record
		for i := range 30 {
			msgs = append(msgs, protocol.Record{Offset: int64(i), Time: time.UnixMilli(1_700_000_000_000 + int64(i)),
				Key: protocol.NewBytes(fmt.Appendf(nil, "k%d", i)), Value: protocol.NewBytes(fmt.Appendf(nil, "v%d", i))})
		}
		rs := protocol.RecordSet{Version: 1, Attributes: protocol.Attributes(codec), Records: protocol.NewRecordReader(msgs...)}
		var buf bytes.Buffer
		if _, err := rs.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		got, offsets, next, err := collect(t, buf.Bytes()[4:]) // without the size prefix
		if err != nil {
			t.Fatalf("%v: %v", codec, err)
		}
		if len(got) != 30 || offsets[29] != 29 || string(got[7].key) != "k7" || string(got[7].value) != "v7" || got[7].timeDelta != 7 || next != 30 {
			t.Fatalf("%v: %d records, next %d", codec, len(got), next)
		}
	}
}

// fakeConn answers one request with a prepared response.
type fakeConn struct {
	req  bytes.Buffer
	resp *bytes.Reader
}

func (c *fakeConn) Write(b []byte) (int, error) { return c.req.Write(b) }
func (c *fakeConn) Read(b []byte) (int, error)  { return c.resp.Read(b) }

// TestRawExchangeVersions: the request is what kmsg decodes back, and the
// response is read at the negotiated version, flexible (v12) or not.
func TestRawExchangeVersions(t *testing.T) {
	batches := kmsgBatch(t, 40, 0, 1, someRecords(2), nil)
	for _, v := range []int16{4, 7, 11, 12} {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = "t"
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = 3
		rp.HighWatermark = 42
		rp.RecordBatches = batches
		other := rp
		other.Partition, other.ErrorCode = 1, int16(kafka.NotLeaderForPartition)
		rt.Partitions = append(rt.Partitions, other, rp)
		resp.Topics = append(resp.Topics, rt)
		body := binary.BigEndian.AppendUint32(nil, 1) // correlation id
		if resp.IsFlexible() {
			body = append(body, 0) // no tagged fields
		}
		body = resp.AppendTo(body)
		conn := &fakeConn{resp: bytes.NewReader(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))}

		req := &fetchRequest{topic: "t", partition: 3, offset: 40, maxBytes: 1 << 20, maxWait: time.Second, clientID: "me"}
		if !req.Required(map[protocol.ApiKey]int16{protocol.Fetch: v}) {
			t.Fatal("not raw")
		}
		m, err := req.RawExchange(conn)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		fr := m.(*fetchResponse)
		if fr.err != nil || fr.highWatermark != 42 || !bytes.Equal(fr.records, batches) {
			t.Fatalf("v%d: %+v", v, fr)
		}

		sent := conn.req.Bytes()
		if int(binary.BigEndian.Uint32(sent)) != len(sent)-4 || int16(binary.BigEndian.Uint16(sent[4:])) != 1 ||
			int16(binary.BigEndian.Uint16(sent[6:])) != v {
			t.Fatalf("v%d: request header % x", v, sent[:12])
		}
		// Header: key, version, correlation id, client id (, tags).
		rest := sent[12:]
		n := int(binary.BigEndian.Uint16(rest))
		if string(rest[2:2+n]) != "me" {
			t.Fatalf("v%d: client id %q", v, rest[2:2+n])
		}
		rest = rest[2+n:]
		got := kmsg.NewPtrFetchRequest()
		got.Version = v
		if got.IsFlexible() {
			rest = rest[1:]
		}
		if err := got.ReadFrom(rest); err != nil {
			t.Fatalf("v%d: request: %v", v, err)
		}
		p := got.Topics[0].Partitions[0]
		if got.Topics[0].Topic != "t" || p.Partition != 3 || p.FetchOffset != 40 || p.PartitionMaxBytes != 1<<20 ||
			got.MaxBytes != 1<<20 || got.MaxWaitMillis != 1000 || got.ReplicaID != -1 {
			t.Fatalf("v%d: request %+v", v, got)
		}
	}

	// Too old a broker, a response for another partition, a cut response.
	req := &fetchRequest{topic: "t", partition: 3}
	req.Required(map[protocol.ApiKey]int16{protocol.Fetch: 3})
	if _, err := req.RawExchange(&fakeConn{resp: bytes.NewReader(nil)}); err == nil {
		t.Fatal("Fetch v3 accepted")
	}
	req.Required(map[protocol.ApiKey]int16{protocol.Fetch: 11})
	if _, err := req.RawExchange(&fakeConn{resp: bytes.NewReader([]byte{0, 0, 0, 9, 0, 0, 0, 1})}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut response: %v", err)
	}
}

func TestMessageHeaders(t *testing.T) {
	st := &scanState{}
	var h []byte
	for _, kv := range [][2]string{{"a", "1"}, {"b", ""}, {"a", "3"}} {
		h = binary.AppendVarint(h, int64(len(kv[0])))
		h = append(h, kv[0]...)
		h = binary.AppendVarint(h, int64(len(kv[1])))
		h = append(h, kv[1]...)
	}
	h = append(h, 2, 'c', 1) // header c with a null value
	m := &Message{headers: h, nHeaders: 4, scan: st}
	if v, ok := m.Header("a"); !ok || string(v) != "3" {
		t.Fatalf("a = %q %v", v, ok)
	}
	if v, ok := m.Header("c"); !ok || v != nil {
		t.Fatalf("c = %q %v", v, ok)
	}
	if _, ok := m.Header("z"); ok {
		t.Fatal("z found")
	}
	hs := m.Headers()
	if len(hs) != 4 || hs[0].Key != "a" || string(hs[2].Value) != "3" || hs[3].Key != "c" || hs[3].Value != nil {
		t.Fatalf("headers %+v", hs)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = m.Headers() })
	if allocs != 0 {
		t.Fatalf("Headers allocates %v times once its keys are known", allocs)
	}
}

// FuzzDecodeBatches: whatever a fetch response holds, decoding returns
// records or an error; it never panics or reads outside the bytes.
func FuzzDecodeBatches(f *testing.F) {
	recs := someRecords(20)
	for codec := range 5 {
		f.Add(kmsgBatch(f, 7, int16(codec), 19, recs, nil))
	}
	f.Add(append(kmsgBatch(f, 0, attrControl, 0, recs[:1], nil), kmsgBatch(f, 1, 0, 3, recs[:2], nil)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d decoder
		n := 0
		_, _ = d.each(b, func(r *record) error {
			if n++; n > 1<<20 {
				return errors.New("too many records")
			}
			_, _ = findHeader(r.headers, r.nHeaders, "h")
			return nil
		})
		// The same bytes with valid CRCs, so that the fuzzer gets past them.
		fixed := bytes.Clone(b)
		for p := fixed; len(p) >= batchHeaderSize; {
			size := int(int32(binary.BigEndian.Uint32(p[8:]))) + 12
			if size < batchHeaderSize || size > len(p) {
				break
			}
			binary.BigEndian.PutUint32(p[17:], crc32.Checksum(p[batchCRCFrom:size], castagnoli))
			p = p[size:]
		}
		_, _ = d.each(fixed, func(r *record) error {
			_, _ = findHeader(r.headers, r.nHeaders, "h")
			return nil
		})
	})
}
