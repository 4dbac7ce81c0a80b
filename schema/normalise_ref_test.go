package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The normaliser as first written, on encoding/json's tokenizer: slow and
// allocating, and the reference the fast one is fuzzed against.

func refNormaliseValue(dst, v []byte, depth int) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	out, err := refNormaliseNext(dst, dec, depth)
	if err != nil {
		return dst, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return dst, errors.New("schema: data after the JSON value")
	}
	return out, nil
}

// normaliseNext appends the next value of dec.
func refNormaliseNext(dst []byte, dec *json.Decoder, depth int) ([]byte, error) {
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
				dst = refAppendString(dst, name.(string))
				dst = append(dst, ':')
			}
			if dst, err = refNormaliseNext(dst, dec, depth); err != nil {
				return dst, err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return dst, fmt.Errorf("schema: normalising: %w", err)
		}
		return append(dst, closing), nil
	case string:
		return refNormaliseString(dst, t, depth), nil
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
func refNormaliseString(dst []byte, s string, depth int) []byte {
	if depth < maxNesting {
		if b := bytes.TrimSpace([]byte(s)); len(b) > 1 && (b[0] == '{' && b[len(b)-1] == '}' || b[0] == '[' && b[len(b)-1] == ']') && json.Valid(b) {
			if out, err := refNormaliseValue(dst, b, depth+1); err == nil {
				return out
			}
		}
	}
	if ts, ok := refDefenderTime(s); ok {
		return refAppendString(dst, ts)
	}
	return refAppendString(dst, s)
}

// defenderTime turns "yyyy-MM-dd HH:mm:ss[.f{1,7}]" into RFC 3339 UTC.
func refDefenderTime(s string) (string, bool) {
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
func refAppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONEscaped(dst, []byte(s))
	return append(dst, '"')
}
