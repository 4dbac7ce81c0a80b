package schema

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
)

// defaultReadChunk is the least free space the LineReader keeps for one
// Read call, and so the slack of its buffer beyond maxLine.
const defaultReadChunk = 64 << 10

// maxEmptyReads is how many (0, nil) reads in a row are tolerated before
// the reader fails with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Line is one non-blank physical line of a part file.
type Line struct {
	// Number is the 1-based physical line number in the decompressed
	// content; blank lines advance it although they are never returned.
	Number int64
	// Bytes is the line without its "\n" or "\r\n" terminator and, on
	// line 1, without a leading UTF-8 BOM. It aliases the LineReader's
	// buffer and is valid until the next call of Next. It is nil when
	// TooLong.
	Bytes []byte
	// TooLong reports a line longer than maxLine: its bytes were
	// discarded while reading.
	TooLong bool
	// Length is the full length of the line in bytes, without terminator
	// (also when TooLong).
	Length int64
}

// LineReader frames decompressed part content into lines (README "Failure handling"):
// lines end with "\n" or "\r\n" (one trailing "\r" is removed, also from
// a last line without "\n"), a last line without terminator is returned,
// a UTF-8 BOM at the very start of the content is not part of line 1,
// and blank lines (empty, or only spaces, tabs and carriage returns) are
// skipped but counted in Line.Number.
//
// Its memory is bounded by maxLine plus a constant, whatever the input: a
// line longer than maxLine is reported with TooLong and its bytes are
// dropped as they are read. A LineReader is not safe for concurrent use.
type LineReader struct {
	r       io.Reader
	buf     []byte // len(buf) == cap(buf); grows up to maxBuf
	start   int    // buf[start:end] holds unconsumed bytes
	end     int
	scanned int // buf[start:scanned] is known to hold no '\n'
	maxLine int
	maxBuf  int
	chunk   int // least free space for one Read
	number  int64
	read    int64
	err     error // sticky: io.EOF, or a wrapped read error
	bomDone bool
	empties int
}

// NewLineReader frames decompressed part content into lines. maxLine > 0
// is the largest line length in bytes (without terminator) that is
// returned whole. It panics if maxLine <= 0.
func NewLineReader(r io.Reader, maxLine int) *LineReader {
	return newLineReader(r, maxLine, defaultReadChunk)
}

func newLineReader(r io.Reader, maxLine, chunk int) *LineReader {
	if maxLine <= 0 {
		panic("schema: NewLineReader: maxLine must be > 0")
	}
	if chunk <= 0 {
		chunk = defaultReadChunk
	}
	// maxLine bytes, an optional "\r" and the "\n" must fit with room
	// for one more read.
	maxBuf := math.MaxInt
	if maxLine <= math.MaxInt-2-chunk {
		maxBuf = maxLine + 2 + chunk
	}
	size := min(maxBuf, 2*chunk)
	lr := &LineReader{buf: make([]byte, size), maxLine: maxLine, maxBuf: maxBuf, chunk: chunk}
	lr.Reset(r)
	return lr
}

// Reset makes lr read another stream, reusing its buffers; the line
// count and BytesRead restart from zero.
func (lr *LineReader) Reset(r io.Reader) {
	lr.r = r
	lr.start, lr.end, lr.scanned = 0, 0, 0
	lr.number, lr.read = 0, 0
	lr.err = nil
	lr.bomDone = false
	lr.empties = 0
}

// BytesRead returns the number of bytes consumed from the reader so far.
func (lr *LineReader) BytesRead() int64 { return lr.read }

// Next returns the next non-blank line. It returns io.EOF after the last
// line; an error of the underlying reader is returned wrapped (with %w)
// once the complete lines before it were returned, and again on every
// later call.
func (lr *LineReader) Next() (Line, error) {
	if !lr.bomDone {
		for lr.end-lr.start < len(utf8BOM) && lr.err == nil {
			lr.fill()
		}
		if bytes.HasPrefix(lr.buf[lr.start:lr.end], utf8BOM) {
			lr.start += len(utf8BOM)
			lr.scanned = lr.start
		}
		lr.bomDone = true
	}
	for {
		if i := bytes.IndexByte(lr.buf[lr.scanned:lr.end], '\n'); i >= 0 {
			nl := lr.scanned + i
			b := lr.buf[lr.start:nl]
			lr.start = nl + 1
			lr.scanned = lr.start
			lr.number++
			if l, ok := lr.line(b); ok {
				return l, nil
			}
			continue
		}
		lr.scanned = lr.end
		pending := lr.end - lr.start
		if pending > lr.maxLine+1 {
			// Even without a trailing "\r" the line is longer than maxLine.
			l, ok, err := lr.discard()
			if err != nil {
				return Line{}, err
			}
			if ok {
				return l, nil
			}
			continue
		}
		if lr.err != nil {
			if lr.err == io.EOF && pending > 0 {
				b := lr.buf[lr.start:lr.end]
				lr.start = lr.end
				lr.number++
				if l, ok := lr.line(b); ok {
					return l, nil
				}
				continue
			}
			return Line{}, lr.err
		}
		lr.fill()
	}
}

// line makes a Line of the physical line b (without "\n"); ok is false
// for a blank line.
func (lr *LineReader) line(b []byte) (l Line, ok bool) {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	if isBlank(b) {
		return Line{}, false
	}
	if len(b) > lr.maxLine {
		return Line{Number: lr.number, TooLong: true, Length: int64(len(b))}, true
	}
	return Line{Number: lr.number, Bytes: b, Length: int64(len(b))}, true
}

// discard consumes the rest of a line that is known to be too long,
// counting its length without keeping its bytes. ok is false when the
// line was blank.
func (lr *LineReader) discard() (l Line, ok bool, err error) {
	p := lr.buf[lr.start:lr.end]
	length := int64(len(p))
	blank := isBlank(p)
	lastCR := p[len(p)-1] == '\r'
	lr.start, lr.end, lr.scanned = 0, 0, 0
	lr.number++
	for {
		if lr.err != nil {
			if lr.err != io.EOF {
				return Line{}, false, lr.err
			}
			break // a last line without "\n"
		}
		lr.fill()
		c := lr.buf[lr.start:lr.end]
		if i := bytes.IndexByte(c, '\n'); i >= 0 {
			c = c[:i]
			lr.start += i + 1
			lr.scanned = lr.start
		} else {
			lr.start, lr.end, lr.scanned = 0, 0, 0
		}
		length += int64(len(c))
		if len(c) > 0 {
			lastCR = c[len(c)-1] == '\r'
			blank = blank && isBlank(c)
		}
		if lr.start > 0 {
			break
		}
	}
	if lastCR {
		length--
	}
	if blank {
		return Line{}, false, nil
	}
	return Line{Number: lr.number, TooLong: true, Length: length}, true, nil
}

// fill reads once from r into the free end of buf, compacting or growing
// buf first so that at least chunk bytes are free (possible because the
// unconsumed bytes never exceed maxLine+1 here).
func (lr *LineReader) fill() {
	if len(lr.buf)-lr.end < lr.chunk {
		if lr.start > 0 {
			n := copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.scanned -= lr.start
			lr.start, lr.end = 0, n
		}
		if len(lr.buf)-lr.end < lr.chunk && len(lr.buf) < lr.maxBuf {
			size := max(2*len(lr.buf), lr.end+lr.chunk)
			size = min(size, lr.maxBuf)
			nb := make([]byte, size)
			copy(nb, lr.buf[:lr.end])
			lr.buf = nb
		}
	}
	n, err := lr.r.Read(lr.buf[lr.end:])
	if n < 0 || n > len(lr.buf)-lr.end {
		n = 0
		if err == nil {
			err = errors.New("invalid Read count")
		}
	}
	lr.end += n
	lr.read += int64(n)
	switch {
	case err == io.EOF:
		lr.err = io.EOF
	case err != nil:
		lr.err = fmt.Errorf("schema: reading part content after %d bytes: %w", lr.read, err)
	case n == 0:
		lr.empties++
		if lr.empties >= maxEmptyReads {
			lr.err = fmt.Errorf("schema: reading part content after %d bytes: %w", lr.read, io.ErrNoProgress)
		}
	default:
		lr.empties = 0
	}
}

// isBlank reports whether b holds only spaces, tabs and carriage returns.
func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
