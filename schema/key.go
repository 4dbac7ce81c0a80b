package schema

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

var (
	// ErrNotObject reports a line that is not exactly one JSON object:
	// syntactically invalid JSON (including invalid UTF-8 in a string),
	// or valid JSON of another kind (array, string, number, literal).
	ErrNotObject = errors.New("schema: line is not a JSON object")
	// ErrNoDeviceID reports a JSON object without a top-level "DeviceId"
	// member, or whose DeviceId is not a string or is empty.
	ErrNoDeviceID = errors.New("schema: line has no non-empty string DeviceId")
)

// maxDepth is the deepest nesting of objects and arrays accepted, the
// same limit as encoding/json's.
const maxDepth = 10000

// deviceIDKey is the member name whose value is the record key.
const deviceIDKey = "DeviceId"

// lineError is an ErrNotObject or ErrNoDeviceID with a short reason. It
// never holds the line's content.
type lineError struct {
	err    error
	reason string
	offset int // byte offset in the line, or -1
}

func (e *lineError) Error() string {
	s := e.err.Error() + ": " + e.reason
	if e.offset >= 0 {
		s += " at byte " + itoa(e.offset)
	}
	return s
}

func (e *lineError) Unwrap() error { return e.err }

// DeviceID checks that line is exactly one JSON object (RFC 8259 syntax;
// surrounding whitespace allowed) and returns the value of its top-level
// "DeviceId" member (the member name compared after unescaping and
// ASCII case-folding, as encoding/json matches a struct field; if several
// members match, the last wins, as encoding/json does).
//
// The whole line is validated in one pass, and strings must be valid
// UTF-8 (RFC 8259 §8.1): a line with invalid UTF-8 is rejected with
// ErrNotObject, where encoding/json would silently replace the bytes.
// Escapes \uXXXX of unpaired surrogates are accepted and, in the DeviceId,
// decoded to U+FFFD as encoding/json does.
//
// The result aliases line (with its capacity clipped) when the string has
// no escapes; otherwise it is a newly allocated unescaped copy. Errors
// wrap ErrNotObject or ErrNoDeviceID and never contain line content.
func DeviceID(line []byte) ([]byte, error) {
	id, _, err := NewKeys(nil).Read(line)
	return id, err
}

// Keys reads the keys of an export's lines: the record key (DeviceId) and
// the natural key encoding of the export's key columns. A Keys is reused
// line after line by one goroutine.
type Keys struct {
	cols  []string
	spans []keySpan
	out   []byte
	p     parser
}

// keySpan is where a key column's value stands in the line.
type keySpan struct {
	start, end      int
	found, isString bool
	escaped         bool
}

// NewKeys returns the key reader of an export whose natural key is cols
// (cols[0] is DeviceId; nil or one column: the natural key is the
// DeviceId itself).
func NewKeys(cols []string) *Keys {
	if len(cols) == 0 {
		cols = []string{deviceIDKey}
	}
	return &Keys{cols: cols, spans: make([]keySpan, len(cols)), out: make([]byte, 0, 256)}
}

// Read checks line as DeviceID does and returns its DeviceId and its
// natural key encoding: for one key column the DeviceId itself; for
// more, a compact JSON object of the key columns in their declared order
// and spelling, each value as the line's JSON value (a missing column is
// null; a string re-encoded with the fewest escapes, so that one value
// has one encoding; an object or array compacted). Column names are
// matched after ASCII case-folding. Both results are valid until the
// next call; id may alias line.
func (k *Keys) Read(line []byte) (id, natural []byte, err error) {
	p := &k.p
	*p = parser{b: line, depth: 1, kinds: p.kinds}
	for i := range k.spans {
		k.spans[i] = keySpan{}
	}
	n := len(line)
	i := p.ws(0)
	if i >= n {
		return nil, nil, &lineError{ErrNotObject, "no JSON value", i}
	}
	if line[i] != '{' {
		return nil, nil, &lineError{ErrNotObject, "expected '{'", i}
	}
	i = p.ws(i + 1)
	if i < n && line[i] == '}' {
		i++
	} else {
		for {
			if i >= n || line[i] != '"' {
				return nil, nil, p.notObject("expected member name", i)
			}
			ks := i
			ke, kesc := p.str(i)
			if ke < 0 {
				return nil, nil, p.notObject("", 0)
			}
			i = p.ws(ke)
			if i >= n || line[i] != ':' {
				return nil, nil, p.notObject("expected ':'", i)
			}
			i = p.ws(i + 1)
			c := k.match(line[ks+1:ke-1], kesc)
			vs := i
			if i < n && line[i] == '"' {
				ve, vesc := p.str(i)
				if ve < 0 {
					return nil, nil, p.notObject("", 0)
				}
				if c >= 0 {
					k.spans[c] = keySpan{start: vs, end: ve, found: true, isString: true, escaped: vesc}
				}
				i = ve
			} else {
				i = p.value(i)
				if i < 0 {
					return nil, nil, p.notObject("", 0)
				}
				if c >= 0 {
					k.spans[c] = keySpan{start: vs, end: i, found: true}
				}
			}
			i = p.ws(i)
			if i < n && line[i] == ',' {
				i = p.ws(i + 1)
				continue
			}
			if i < n && line[i] == '}' {
				i++
				break
			}
			return nil, nil, p.notObject("expected ',' or '}'", i)
		}
	}
	if i = p.ws(i); i != n {
		return nil, nil, &lineError{ErrNotObject, "data after the object", i}
	}
	d := k.spans[0]
	switch {
	case !d.found:
		return nil, nil, &lineError{ErrNoDeviceID, "no DeviceId member", -1}
	case !d.isString:
		return nil, nil, &lineError{ErrNoDeviceID, "DeviceId is not a string", -1}
	case d.end-d.start == 2:
		return nil, nil, &lineError{ErrNoDeviceID, "DeviceId is empty", -1}
	}
	k.out = k.out[:0]
	if raw := line[d.start+1 : d.end-1 : d.end-1]; !d.escaped {
		id = raw
	} else {
		k.out = appendUnescaped(k.out, raw)
		id = k.out[:len(k.out):len(k.out)]
	}
	if len(k.cols) == 1 {
		return id, id, nil
	}
	start := len(k.out)
	k.out = append(k.out, '{')
	for c, col := range k.cols {
		if c > 0 {
			k.out = append(k.out, ',')
		}
		k.out = append(k.out, '"')
		k.out = append(k.out, col...)
		k.out = append(k.out, '"', ':')
		k.out = appendKeyValue(k.out, line, k.spans[c])
	}
	k.out = append(k.out, '}')
	if d.escaped {
		id = k.out[:start:start] // k.out may have moved
	}
	return id, k.out[start:], nil
}

// match returns the index of the key column named by the validated
// string content raw (compared after unescaping and ASCII case-folding),
// or -1.
func (k *Keys) match(raw []byte, escaped bool) int {
	for c, col := range k.cols {
		if !escaped && len(raw) != len(col) {
			continue
		}
		if nameEqualFold(raw, escaped, col) {
			return c
		}
	}
	return -1
}

// appendKeyValue appends the value at s in line to a natural key: null
// when missing, strings with the fewest escapes, other values compacted.
func appendKeyValue(dst, line []byte, s keySpan) []byte {
	switch {
	case !s.found:
		return append(dst, "null"...)
	case s.isString && !s.escaped:
		return append(dst, line[s.start:s.end]...)
	case s.isString:
		dst = append(dst, '"')
		dst = appendJSONEscaped(dst, appendUnescaped(nil, line[s.start+1:s.end-1]))
		return append(dst, '"')
	}
	return appendCompact(dst, line[s.start:s.end])
}

// appendJSONEscaped appends s (valid UTF-8) as the content of a JSON
// string, escaping only what must be escaped.
func appendJSONEscaped(dst, s []byte) []byte {
	const hexd = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&15])
		}
	}
	return append(dst, s[start:]...)
}

// appendCompact appends the validated JSON value v without the whitespace
// outside its strings.
func appendCompact(dst, v []byte) []byte {
	in := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case in:
			dst = append(dst, c)
			if c == '\\' {
				i++
				dst = append(dst, v[i])
			} else if c == '"' {
				in = false
			}
		case c == '"':
			in = true
			dst = append(dst, c)
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// parser is a single-pass JSON syntax checker. Its scanning methods
// return the index after what they scanned, or -1 after recording the
// reason in p.reason and p.off.
type parser struct {
	b      []byte
	reason string
	off    int
	depth  int // current nesting depth; the top-level object is 1
	kinds  [maxDepth/64 + 1]uint64
}

func (p *parser) fail(reason string, off int) int {
	p.reason, p.off = reason, off
	return -1
}

// notObject returns an ErrNotObject error; with an empty reason it uses
// the one recorded by fail.
func (p *parser) notObject(reason string, off int) error {
	if reason == "" {
		reason, off = p.reason, p.off
	}
	return &lineError{ErrNotObject, reason, off}
}

func (p *parser) ws(i int) int {
	for i < len(p.b) {
		switch p.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// push enters an object (obj) or array at depth p.depth+1.
func (p *parser) push(obj bool) bool {
	if p.depth >= maxDepth {
		return false
	}
	w, bit := p.depth/64, uint(p.depth%64)
	if obj {
		p.kinds[w] |= 1 << bit
	} else {
		p.kinds[w] &^= 1 << bit
	}
	p.depth++
	return true
}

// inObject reports whether the innermost open container is an object.
func (p *parser) inObject() bool {
	d := p.depth - 1
	return p.kinds[d/64]&(1<<uint(d%64)) != 0
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialMask has the high bit set in each byte of x (8 bytes of a
// string, little-endian) that a string scan cannot just skip: non-ASCII,
// control characters, '"' and '\\'. Bits above the lowest set one may be
// spurious (borrows), but the lowest set bit marks the first such byte.
func specialMask(x uint64) uint64 {
	q := x ^ (lsb * '"')
	s := x ^ (lsb * '\\')
	return ((x - lsb*0x20) | (q - lsb) | (s - lsb) | x) & msb
}

// str scans the string whose opening quote is at b[i]. It returns the
// index after the closing quote and whether the string has escapes.
func (p *parser) str(i int) (int, bool) {
	b := p.b
	i++
	esc := false
	for {
		for i+8 <= len(b) {
			if m := specialMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return p.fail("unterminated string", i), false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return p.fail("unterminated string", i+1), false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex4(b[i+2:i+6]) < 0 {
					return p.fail(`invalid \u escape`, i), false
				}
				i += 6
			default:
				return p.fail("invalid escape", i), false
			}
		case c < 0x20:
			return p.fail("control character in string", i), false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return p.fail("invalid UTF-8", i), false
			}
			i += size
		}
	}
}

// num scans a number starting at b[i].
func (p *parser) num(i int) int {
	b := p.b
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return p.fail("invalid number", start)
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return p.fail("invalid number", start)
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return p.fail("invalid number", start)
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// name scans a member name and its colon at b[i] and returns the index
// of the member's value.
func (p *parser) name(i int) int {
	if i >= len(p.b) || p.b[i] != '"' {
		return p.fail("expected member name", i)
	}
	i, _ = p.str(i)
	if i < 0 {
		return i
	}
	i = p.ws(i)
	if i >= len(p.b) || p.b[i] != ':' {
		return p.fail("expected ':'", i)
	}
	return p.ws(i + 1)
}

// value scans one JSON value at b[i], iteratively (no recursion, so any
// nesting up to maxDepth costs no goroutine stack).
func (p *parser) value(i int) int {
	b := p.b
	base := p.depth
next:
	for {
		if i >= len(b) {
			return p.fail("unexpected end of line", i)
		}
		switch c := b[i]; c {
		case '{':
			if !p.push(true) {
				return p.fail("nesting too deep", i)
			}
			if i = p.ws(i + 1); i < len(b) && b[i] == '}' {
				p.depth--
				i++
				break
			}
			if i = p.name(i); i < 0 {
				return i
			}
			continue next
		case '[':
			if !p.push(false) {
				return p.fail("nesting too deep", i)
			}
			if i = p.ws(i + 1); i < len(b) && b[i] == ']' {
				p.depth--
				i++
				break
			}
			continue next
		case '"':
			if i, _ = p.str(i); i < 0 {
				return i
			}
		case 't':
			i = p.literal(i, "true")
		case 'f':
			i = p.literal(i, "false")
		case 'n':
			i = p.literal(i, "null")
		default:
			if c != '-' && (c < '0' || c > '9') {
				return p.fail("unexpected character", i)
			}
			i = p.num(i)
		}
		if i < 0 {
			return i
		}
		// A value is complete: close containers or go to the next element.
		for p.depth > base {
			i = p.ws(i)
			if i >= len(b) {
				return p.fail("unexpected end of line", i)
			}
			obj := p.inObject()
			switch {
			case b[i] == ',':
				i = p.ws(i + 1)
				if obj {
					if i = p.name(i); i < 0 {
						return i
					}
				}
				continue next
			case obj && b[i] == '}', !obj && b[i] == ']':
				p.depth--
				i++
			case obj:
				return p.fail("expected ',' or '}'", i)
			default:
				return p.fail("expected ',' or ']'", i)
			}
		}
		return i
	}
}

func (p *parser) literal(i int, lit string) int {
	if len(p.b)-i < len(lit) || string(p.b[i:i+len(lit)]) != lit {
		return p.fail("invalid literal", i)
	}
	return i + len(lit)
}

// hex4 decodes 4 hexadecimal digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// decodeEscape decodes the (already validated) escape at raw[i] == '\\'
// the way encoding/json does: a \u surrogate pair is combined, an
// unpaired surrogate becomes U+FFFD.
func decodeEscape(raw []byte, i int) (rune, int) {
	switch raw[i+1] {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
		r := hex4(raw[i+2 : i+6])
		i += 6
		if utf16.IsSurrogate(r) {
			if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if r2 := hex4(raw[i+2 : i+6]); r2 >= 0 {
					if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
						return d, i + 6
					}
				}
			}
			return unicode.ReplacementChar, i
		}
		return r, i
	default: // '"', '\\', '/'
		return rune(raw[i+1]), i + 2
	}
}

// nextRune decodes the rune at raw[i] of a validated string's content.
func nextRune(raw []byte, i int) (rune, int) {
	c := raw[i]
	if c == '\\' {
		return decodeEscape(raw, i)
	}
	if c < utf8.RuneSelf {
		return rune(c), i + 1
	}
	r, size := utf8.DecodeRune(raw[i:])
	return r, i + size
}

// nameEqualFold reports whether the validated string content raw, once
// unescaped, equals want (ASCII letters compared case-insensitively),
// without allocating.
func nameEqualFold(raw []byte, escaped bool, want string) bool {
	if !escaped {
		if len(raw) != len(want) {
			return false
		}
		for i := 0; i < len(raw); i++ {
			if a, b := raw[i], want[i]; a != b && lower(a) != lower(b) {
				return false
			}
		}
		return true
	}
	var enc [utf8.UTFMax]byte
	j := 0
	for i := 0; i < len(raw); {
		var r rune
		r, i = nextRune(raw, i)
		n := utf8.EncodeRune(enc[:], r)
		if j+n > len(want) {
			return false
		}
		for m := 0; m < n; m++ {
			if a, b := enc[m], want[j+m]; a != b && lower(a) != lower(b) {
				return false
			}
		}
		j += n
	}
	return j == len(want)
}

// lower folds an ASCII letter to lower case.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// appendUnescaped appends the validated string content raw with its
// escapes decoded; the bytes between escapes are copied as they are.
func appendUnescaped(out, raw []byte) []byte {
	for len(raw) > 0 {
		j := bytes.IndexByte(raw, '\\')
		if j < 0 {
			return append(out, raw...)
		}
		out = append(out, raw[:j]...)
		r, k := decodeEscape(raw, j)
		out = utf8.AppendRune(out, r)
		raw = raw[k:]
	}
	return out
}
