package schema

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// maxNesting bounds how deep JSON held in strings is unpacked (a string
// holding JSON holding a string holding JSON …).
const maxNesting = 8

// maxLevel bounds the structural nesting of a value, as encoding/json does.
const maxLevel = 10000

var errSyntax = errors.New("schema: normalising: not a valid JSON value")

// Normalise appends to dst the normalised form of the JSON object line
// (KAFKA_VALUE_FORMAT=json): every string member or element that holds a
// JSON object or array (DeviceGatheredInfo, AvScanResults inside it,
// AdditionalFields) is replaced by that value, itself normalised; every
// string holding one of Defender's timestamps "yyyy-MM-dd HH:mm:ss" with
// up to seven fractional digits (UTC, no zone) becomes RFC 3339 in UTC
// ("yyyy-MM-ddTHH:mm:ss[.fffffff]Z"); everything else is kept as it is —
// every member, in its order, numbers digit for digit, unknown members
// too. The result is compact JSON. line must be valid JSON (Keys.Read
// checked it). A ValueEncoder does the same without allocating.
func Normalise(dst, line []byte) ([]byte, error) {
	var n normaliser
	out, _, err := n.value(dst, line, 0, 0, 0)
	return out, err
}

// normaliser holds the scratch buffers of unescaped strings, one per
// level of JSON held in strings, reused from line to line.
type normaliser struct {
	scratch [maxNesting + 1][]byte
	p       parser
}

// value appends the normalised JSON value at v[i:] (after whitespace) and
// returns the index after it. nest is the number of strings the value is
// inside, level its structural depth. It checks the syntax as strictly as
// Keys.Read: what a string holds is unpacked only when it is valid JSON.
func (n *normaliser) value(dst, v []byte, i, nest, level int) ([]byte, int, error) {
	i = skipWS(v, i)
	if i >= len(v) {
		return dst, i, errSyntax
	}
	switch c := v[i]; c {
	case '{', '[':
		if level >= maxLevel {
			return dst, i, errors.New("schema: normalising: nested too deeply")
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		dst = append(dst, c)
		i = skipWS(v, i+1)
		if i < len(v) && v[i] == closing {
			return append(dst, closing), i + 1, nil
		}
		for {
			if c == '{' {
				end, content, escaped, ok := n.scan(v, i, nest)
				if !ok {
					return dst, i, errSyntax
				}
				dst = appendStringContent(dst, v[i+1:end-1], content, escaped)
				if i = skipWS(v, end); i >= len(v) || v[i] != ':' {
					return dst, i, errSyntax
				}
				dst = append(dst, ':')
				i++
			}
			var err error
			if dst, i, err = n.value(dst, v, i, nest, level+1); err != nil {
				return dst, i, err
			}
			if i = skipWS(v, i); i >= len(v) {
				return dst, i, errSyntax
			}
			switch v[i] {
			case ',':
				dst = append(dst, ',')
				i = skipWS(v, i+1)
			case closing:
				return append(dst, closing), i + 1, nil
			default:
				return dst, i, errSyntax
			}
		}
	case '"':
		end, content, escaped, ok := n.scan(v, i, nest)
		if !ok {
			return dst, i, errSyntax
		}
		return n.str(dst, v[i+1:end-1], content, escaped, nest), end, nil
	case 't':
		return n.literal(dst, v, i, "true")
	case 'f':
		return n.literal(dst, v, i, "false")
	case 'n':
		return n.literal(dst, v, i, "null")
	default: // a number, copied digit for digit
		n.p.b = v
		j := n.p.num(i)
		if j < 0 {
			return dst, i, errSyntax
		}
		return append(dst, v[i:j]...), j, nil
	}
}

func (n *normaliser) literal(dst, v []byte, i int, lit string) ([]byte, int, error) {
	if len(v)-i < len(lit) || string(v[i:i+len(lit)]) != lit {
		return dst, i, errSyntax
	}
	return append(dst, lit...), i + len(lit), nil
}

// str appends the string whose validated content is raw (unescaped:
// content): as the value it holds when that is a JSON object or array, as
// RFC 3339 when it is a Defender timestamp, as a string (with the fewest
// escapes) otherwise.
func (n *normaliser) str(dst, raw, content []byte, escaped bool, nest int) []byte {
	if nest < maxNesting {
		if b := trimSpace(content); len(b) > 1 && (b[0] == '{' && b[len(b)-1] == '}' || b[0] == '[' && b[len(b)-1] == ']') {
			mark := len(dst)
			if out, end, err := n.value(dst, b, 0, nest+1, 0); err == nil && end == len(b) {
				return out
			}
			dst = dst[:mark]
		}
	}
	if isDefenderTime(content) {
		dst = append(dst, '"')
		dst = append(dst, content[:10]...)
		dst = append(dst, 'T')
		dst = append(dst, content[11:]...)
		return append(dst, 'Z', '"')
	}
	return appendStringContent(dst, raw, content, escaped)
}

// appendStringContent appends a string with the fewest escapes: raw as it
// is when it has no escapes, its unescaped content escaped anew otherwise.
func appendStringContent(dst, raw, content []byte, escaped bool) []byte {
	dst = append(dst, '"')
	if escaped {
		dst = appendJSONEscaped(dst, content)
	} else {
		dst = append(dst, raw...)
	}
	return append(dst, '"')
}

// scan reads the string starting at v[i] == '"': the index after it, its
// content unescaped (the bytes of v when it has no escapes, else
// n.scratch[nest]) and whether it has escapes. It skips 8 bytes at a time
// to the next quote, backslash or control character, and rejects what
// Keys.Read rejects: control characters, invalid escapes. (Bytes of v are
// valid UTF-8: the line was checked, and unescaping yields UTF-8.)
func (n *normaliser) scan(v []byte, i, nest int) (end int, content []byte, escaped, ok bool) {
	if i >= len(v) || v[i] != '"' {
		return i, nil, false, false
	}
	start := i + 1
	j := start
	var out []byte
	for {
		for j+8 <= len(v) {
			x := binary.LittleEndian.Uint64(v[j:])
			q, s := x^(lsb*'"'), x^(lsb*'\\')
			if m := ((q-lsb)&^q | (s-lsb)&^s | (x-lsb*0x20)&^x) & msb; m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		for j < len(v) && v[j] != '"' && v[j] != '\\' && v[j] >= 0x20 {
			j++
		}
		if j >= len(v) || v[j] < 0x20 {
			return j, nil, false, false
		}
		if v[j] == '"' {
			if !escaped {
				return j + 1, v[start:j], false, true
			}
			out = append(out, v[start:j]...)
			n.scratch[nest] = out
			return j + 1, out, true, true
		}
		// An escape.
		if !escaped {
			escaped, out = true, n.scratch[nest][:0]
		}
		if j+1 >= len(v) {
			return j, nil, false, false
		}
		out = append(out, v[start:j]...)
		switch v[j+1] {
		case '"', '\\', '/': // the common escapes of JSON held in a string
			out = append(out, v[j+1])
			start, j = j+2, j+2
			continue
		case 'b', 'f', 'n', 'r', 't':
		case 'u':
			if j+6 > len(v) || hex4(v[j+2:j+6]) < 0 {
				return j, nil, false, false
			}
		default:
			return j, nil, false, false
		}
		r, k := decodeEscape(v, j)
		out = utf8.AppendRune(out, r)
		start, j = k, k
	}
}

func skipWS(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	i := skipWS(b, 0)
	j := len(b)
	for j > i && (b[j-1] == ' ' || b[j-1] == '\t' || b[j-1] == '\n' || b[j-1] == '\r') {
		j--
	}
	return b[i:j]
}

// isDefenderTime reports whether s is "yyyy-MM-dd HH:mm:ss[.f{1,7}]".
func isDefenderTime(s []byte) bool {
	if len(s) < 19 || len(s) > 27 || s[10] != ' ' {
		return false
	}
	digits := func(from, to int) bool {
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if !digits(0, 4) || s[4] != '-' || !digits(5, 7) || s[7] != '-' || !digits(8, 10) ||
		!digits(11, 13) || s[13] != ':' || !digits(14, 16) || s[16] != ':' || !digits(17, 19) {
		return false
	}
	return len(s) == 19 || s[19] == '.' && len(s) > 20 && digits(20, len(s))
}
