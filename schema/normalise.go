package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxNesting bounds how deep JSON held in strings is unpacked (a string
// holding JSON holding a string holding JSON …).
const maxNesting = 8

// Normalise appends to dst the normalised form of the JSON object line
// (KAFKA_VALUE_FORMAT=json): every string member or element that holds a
// JSON object or array (DeviceGatheredInfo, AvScanResults inside it,
// AdditionalFields) is replaced by that value, itself normalised; every
// string holding one of Defender's timestamps "yyyy-MM-dd HH:mm:ss" with
// up to seven fractional digits (UTC, no zone) becomes RFC 3339 in UTC
// ("yyyy-MM-ddTHH:mm:ss[.fffffff]Z"); everything else is kept as it is —
// every member, in its order, numbers digit for digit, unknown members
// too. The result is compact JSON. line must be valid JSON (Keys.Read
// checked it).
func Normalise(dst, line []byte) ([]byte, error) {
	return normaliseValue(dst, line, 0)
}

func normaliseValue(dst, v []byte, depth int) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	out, err := normaliseNext(dst, dec, depth)
	if err != nil {
		return dst, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return dst, errors.New("schema: data after the JSON value")
	}
	return out, nil
}

// normaliseNext appends the next value of dec.
func normaliseNext(dst []byte, dec *json.Decoder, depth int) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return dst, fmt.Errorf("schema: normalising: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		closing := byte('}')
		if t == '[' {
			closing = ']'
		}
		dst = append(dst, byte(t))
		for first := true; dec.More(); first = false {
			if !first {
				dst = append(dst, ',')
			}
			if t == '{' {
				name, err := dec.Token()
				if err != nil {
					return dst, fmt.Errorf("schema: normalising: %w", err)
				}
				dst = appendString(dst, name.(string))
				dst = append(dst, ':')
			}
			if dst, err = normaliseNext(dst, dec, depth); err != nil {
				return dst, err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return dst, fmt.Errorf("schema: normalising: %w", err)
		}
		return append(dst, closing), nil
	case string:
		return normaliseString(dst, t, depth), nil
	case json.Number:
		return append(dst, t...), nil
	case bool:
		if t {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case nil:
		return append(dst, "null"...), nil
	}
	return dst, fmt.Errorf("schema: normalising: unexpected token %v", tok)
}

// normaliseString appends s as its JSON value when it holds a JSON object
// or array, as RFC 3339 when it is a Defender timestamp, as a string
// otherwise.
func normaliseString(dst []byte, s string, depth int) []byte {
	if depth < maxNesting {
		if b := bytes.TrimSpace([]byte(s)); len(b) > 1 && (b[0] == '{' && b[len(b)-1] == '}' || b[0] == '[' && b[len(b)-1] == ']') && json.Valid(b) {
			if out, err := normaliseValue(dst, b, depth+1); err == nil {
				return out
			}
		}
	}
	if ts, ok := defenderTime(s); ok {
		return appendString(dst, ts)
	}
	return appendString(dst, s)
}

// defenderTime turns "yyyy-MM-dd HH:mm:ss[.f{1,7}]" into RFC 3339 UTC.
func defenderTime(s string) (string, bool) {
	if len(s) < 19 || len(s) > 27 || s[10] != ' ' {
		return "", false
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
		return "", false
	}
	if len(s) > 19 && (s[19] != '.' || len(s) == 20 || !digits(20, len(s))) {
		return "", false
	}
	return s[:10] + "T" + s[11:] + "Z", true
}

// appendString appends s as a JSON string with the fewest escapes.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONEscaped(dst, []byte(s))
	return append(dst, '"')
}
