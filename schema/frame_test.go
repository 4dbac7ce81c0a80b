package schema

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// wantLine is a Line in comparable form.
type wantLine struct {
	Number  int64
	Text    string
	TooLong bool
	Length  int64
}

func ok(n int64, s string) wantLine { return wantLine{Number: n, Text: s, Length: int64(len(s))} }
func tooLong(n int64, length int) wantLine {
	return wantLine{Number: n, TooLong: true, Length: int64(length)}
}

// readers wraps content in the reader shapes Next must cope with.
var readers = map[string]func([]byte) io.Reader{
	"whole":    func(b []byte) io.Reader { return bytes.NewReader(b) },
	"one-byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
	"data-eof": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
}

// collect reads all lines; it fails the test on an error other than io.EOF.
func collect(t testing.TB, lr *LineReader) []wantLine {
	t.Helper()
	var got []wantLine
	for {
		l, err := lr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if l.TooLong != (l.Bytes == nil) {
			t.Fatalf("line %d: TooLong=%v but Bytes nil=%v", l.Number, l.TooLong, l.Bytes == nil)
		}
		if !l.TooLong && int64(len(l.Bytes)) != l.Length {
			t.Fatalf("line %d: Length %d, len(Bytes) %d", l.Number, l.Length, len(l.Bytes))
		}
		got = append(got, wantLine{Number: l.Number, Text: string(l.Bytes), TooLong: l.TooLong, Length: l.Length})
	}
}

func equalLines(a, b []wantLine) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLineReaderFraming(t *testing.T) {
	long := strings.Repeat("x", 25)
	tests := []struct {
		name    string
		in      string
		maxLine int
		want    []wantLine
	}{
		{"empty input", "", 10, nil},
		{"only newlines", "\n\n\r\n", 10, nil},
		{"simple", "a\nbb\nccc\n", 10, []wantLine{ok(1, "a"), ok(2, "bb"), ok(3, "ccc")}},
		{"no final newline", "a\nbb", 10, []wantLine{ok(1, "a"), ok(2, "bb")}},
		{"crlf", "a\r\nbb\r\n", 10, []wantLine{ok(1, "a"), ok(2, "bb")}},
		{"crlf no final newline", "a\r\nbb\r", 10, []wantLine{ok(1, "a"), ok(2, "bb")}},
		{"only one cr stripped", "a\r\r\n", 10, []wantLine{ok(1, "a\r")}},
		{"inner cr kept", "a\rb\n", 10, []wantLine{ok(1, "a\rb")}},
		{"bom", "\xEF\xBB\xBFa\nb\n", 10, []wantLine{ok(1, "a"), ok(2, "b")}},
		{"bom only", "\xEF\xBB\xBF", 10, nil},
		{"bom then blank line", "\xEF\xBB\xBF\r\nx", 10, []wantLine{ok(2, "x")}},
		{"bom not on line 2", "a\n\xEF\xBB\xBFb\n", 10, []wantLine{ok(1, "a"), ok(2, "\xEF\xBB\xBFb")}},
		{"partial bom is content", "\xEF\xBBa\n", 10, []wantLine{ok(1, "\xEF\xBBa")}},
		{"bom excluded from maxLine", "\xEF\xBB\xBF12345\n", 5, []wantLine{ok(1, "12345")}},
		{"blank lines advance numbers", "\n\na\n\n\nb\n", 10, []wantLine{ok(3, "a"), ok(6, "b")}},
		{"whitespace-only lines", " \t \n\t\r\n \r \r\na\n   ", 10, []wantLine{ok(4, "a")}},
		{"leading space kept", "  a \n", 10, []wantLine{ok(1, "  a ")}},
		{"exactly maxLine", "12345\n123456\n", 5, []wantLine{ok(1, "12345"), tooLong(2, 6)}},
		{"exactly maxLine crlf", "12345\r\n123456\r\n", 5, []wantLine{ok(1, "12345"), tooLong(2, 6)}},
		{"exactly maxLine at eof with cr", "12345\r", 5, []wantLine{ok(1, "12345")}},
		{"too long in the middle", "a\n" + long + "\nb\n\nc", 10,
			[]wantLine{ok(1, "a"), tooLong(2, 25), ok(3, "b"), ok(5, "c")}},
		{"too long crlf", "a\r\n" + long + "\r\nb\r\n", 10, []wantLine{ok(1, "a"), tooLong(2, 25), ok(3, "b")}},
		{"too long at eof", "a\n" + long, 10, []wantLine{ok(1, "a"), tooLong(2, 25)}},
		{"too long at eof with cr", "a\n" + long + "\r", 10, []wantLine{ok(1, "a"), tooLong(2, 25)}},
		{"too long blank line skipped", strings.Repeat(" \t", 20) + "\r\na\n", 10, []wantLine{ok(2, "a")}},
		{"too long first line after bom", "\xEF\xBB\xBF" + long + "\nz", 10, []wantLine{tooLong(1, 25), ok(2, "z")}},
		{"too long consecutive", long + "\n" + long + long + "\n" + "ok\n", 10,
			[]wantLine{tooLong(1, 25), tooLong(2, 50), ok(3, "ok")}},
	}
	for _, tc := range tests {
		for rname, mk := range readers {
			for _, chunk := range []int{0, 1, 3, 16} {
				lr := newLineReader(mk([]byte(tc.in)), tc.maxLine, chunk)
				got := collect(t, lr)
				if !equalLines(got, tc.want) {
					t.Errorf("%s/%s/chunk=%d:\n got %+v\nwant %+v", tc.name, rname, chunk, got, tc.want)
				}
				if lr.BytesRead() != int64(len(tc.in)) {
					t.Errorf("%s/%s/chunk=%d: BytesRead %d, want %d", tc.name, rname, chunk, lr.BytesRead(), len(tc.in))
				}
				if _, err := lr.Next(); err != io.EOF {
					t.Errorf("%s/%s/chunk=%d: Next after EOF: %v", tc.name, rname, chunk, err)
				}
			}
		}
	}
}

// errAfterReader returns its data, then err (with the last bytes or alone).
type errAfterReader struct {
	data []byte
	err  error
}

func (r *errAfterReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, r.err
	}
	return n, nil
}

func TestLineReaderReadError(t *testing.T) {
	cut := errors.New("connection reset")
	for _, in := range []string{"a\nb\npartial", "a\nb\n"} {
		for _, chunk := range []int{0, 2} {
			lr := newLineReader(&errAfterReader{data: []byte(in), err: cut}, 10, chunk)
			for _, want := range []wantLine{ok(1, "a"), ok(2, "b")} {
				l, err := lr.Next()
				if err != nil || l.Number != want.Number || string(l.Bytes) != want.Text {
					t.Fatalf("%q: got %d %q %v, want %+v", in, l.Number, l.Bytes, err, want)
				}
			}
			for range 2 { // the error is sticky, the partial line never returned
				_, err := lr.Next()
				if !errors.Is(err, cut) {
					t.Fatalf("%q: error %v does not wrap %v", in, err, cut)
				}
			}
		}
	}
	// An error while discarding a too-long line.
	lr := NewLineReader(&errAfterReader{data: []byte(strings.Repeat("x", 100)), err: cut}, 10)
	if _, err := lr.Next(); !errors.Is(err, cut) {
		t.Fatalf("too-long line: error %v does not wrap %v", err, cut)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestLineReaderNoProgress(t *testing.T) {
	lr := NewLineReader(emptyReader{}, 10)
	if _, err := lr.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

func TestLineReaderReset(t *testing.T) {
	lr := NewLineReader(strings.NewReader("a\nb"), 10)
	if got := collect(t, lr); !equalLines(got, []wantLine{ok(1, "a"), ok(2, "b")}) {
		t.Fatalf("first stream: %+v", got)
	}
	lr.Reset(strings.NewReader("\xEF\xBB\xBF\nc\n"))
	if got := collect(t, lr); !equalLines(got, []wantLine{ok(2, "c")}) {
		t.Fatalf("after Reset: %+v", got)
	}
	if lr.BytesRead() != 6 {
		t.Fatalf("BytesRead after Reset: %d", lr.BytesRead())
	}
}

func TestNewLineReaderPanicsOnBadMaxLine(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for maxLine 0")
		}
	}()
	NewLineReader(strings.NewReader(""), 0)
}

// patternReader yields n bytes produced by byteAt, without holding them.
type patternReader struct {
	off, n int64
	byteAt func(int64) byte
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := int64(len(p))
	if k > r.n-r.off {
		k = r.n - r.off
	}
	for i := range p[:k] {
		p[i] = r.byteAt(r.off + int64(i))
	}
	r.off += k
	return int(k), nil
}

func TestLineReaderHugeLineBoundedMemory(t *testing.T) {
	const huge = 50 << 20
	const maxLine = 1 << 20
	// A 50 MB line without any newline, then (second case) a short line.
	for _, tail := range []string{"", "\n{\"a\":1}\n"} {
		r := io.MultiReader(&patternReader{n: huge, byteAt: func(i int64) byte { return 'a' + byte(i%26) }}, strings.NewReader(tail))
		lr := NewLineReader(r, maxLine)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l, err := lr.Next()
		runtime.ReadMemStats(&after)
		if err != nil || !l.TooLong || l.Length != huge || l.Number != 1 || l.Bytes != nil {
			t.Fatalf("tail %q: got %+v, %v", tail, l, err)
		}
		if limit := maxLine + 2 + defaultReadChunk; cap(lr.buf) > limit {
			t.Fatalf("buffer capacity %d exceeds %d", cap(lr.buf), limit)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Fatalf("discarding a 50 MB line allocated %d bytes", alloc)
		}
		if tail != "" {
			l, err = lr.Next()
			if err != nil || string(l.Bytes) != `{"a":1}` || l.Number != 2 {
				t.Fatalf("line after huge line: %+v, %v", l, err)
			}
		}
		if _, err := lr.Next(); err != io.EOF {
			t.Fatalf("want EOF, got %v", err)
		}
		if lr.BytesRead() != int64(huge+len(tail)) {
			t.Fatalf("BytesRead %d", lr.BytesRead())
		}
	}
}

func TestLineReaderBufferBoundedByMaxLine(t *testing.T) {
	// Lines just below maxLine with a small chunk make the buffer grow; it
	// must stop at maxLine+2+chunk.
	const maxLine, chunk = 1000, 64
	var in bytes.Buffer
	for i := range 50 {
		in.WriteString(strings.Repeat("y", maxLine-i%3))
		in.WriteString("\r\n")
	}
	lr := newLineReader(&in, maxLine, chunk)
	got := collect(t, lr)
	if len(got) != 50 {
		t.Fatalf("got %d lines", len(got))
	}
	for i, l := range got {
		if l.TooLong || l.Length != int64(maxLine-i%3) {
			t.Fatalf("line %d: %+v", i+1, l)
		}
	}
	if c := cap(lr.buf); c > maxLine+2+chunk {
		t.Fatalf("buffer capacity %d exceeds %d", c, maxLine+2+chunk)
	}
}

// referenceLines is the obvious in-memory implementation of the framing rules.
func referenceLines(in []byte, maxLine int) []wantLine {
	in = bytes.TrimPrefix(in, []byte("\xEF\xBB\xBF"))
	if len(in) == 0 {
		return nil
	}
	segs := bytes.Split(in, []byte("\n"))
	if len(segs[len(segs)-1]) == 0 { // content ended with "\n"
		segs = segs[:len(segs)-1]
	}
	var out []wantLine
	for i, s := range segs {
		s = bytes.TrimSuffix(s, []byte("\r"))
		if len(bytes.Trim(s, " \t\r")) == 0 {
			continue
		}
		if len(s) > maxLine {
			out = append(out, tooLong(int64(i+1), len(s)))
			continue
		}
		out = append(out, ok(int64(i+1), string(s)))
	}
	return out
}

// chunkReader returns at most size bytes per Read.
type chunkReader struct {
	data []byte
	size int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.size, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nb\r\n\n  \t\nlast"), uint16(3), uint8(2), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint16, chunk, readSize uint8) {
		ml := 1 + int(maxLine%512)
		want := referenceLines(data, ml)
		lr := newLineReader(&chunkReader{data: data, size: 1 + int(readSize)}, ml, 1+int(chunk%64))
		got := collect(t, lr)
		if !equalLines(got, want) {
			t.Fatalf("maxLine %d:\n got %+v\nwant %+v", ml, got, want)
		}
		if lr.BytesRead() != int64(len(data)) {
			t.Fatalf("BytesRead %d, want %d", lr.BytesRead(), len(data))
		}
		if c := cap(lr.buf); c > ml+2+lr.chunk {
			t.Fatalf("buffer capacity %d exceeds %d", c, ml+2+lr.chunk)
		}
	})
}

// cycleReader repeats data forever.
type cycleReader struct {
	data []byte
	off  int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func BenchmarkLineReader(b *testing.B) {
	line := realisticLine(b)
	var content []byte
	for range 64 {
		content = append(content, line...)
		content = append(content, '\n')
	}
	lr := NewLineReader(&cycleReader{data: content}, 1<<20)
	b.SetBytes(int64(len(line) + 1))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		l, err := lr.Next()
		if err != nil || len(l.Bytes) != len(line) {
			b.Fatalf("%+v %v", l.Length, err)
		}
	}
}

func TestLineReaderZeroAllocs(t *testing.T) {
	content := []byte("{\"DeviceId\":\"a\"}\r\n\n{\"DeviceId\":\"b\"}\n")
	lr := NewLineReader(&cycleReader{data: content}, 1<<10)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := lr.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %v times per line", allocs)
	}
}
