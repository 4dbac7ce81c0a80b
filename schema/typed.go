package schema

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"unsafe"
)

// ValueFormat is the form of the records' values (KAFKA_VALUE_FORMAT).
type ValueFormat uint8

// The value formats.
const (
	// FormatRaw is Defender's line byte for byte.
	FormatRaw ValueFormat = iota
	// FormatJSON is the normalised record (Normalise).
	FormatJSON
	// FormatAvro is the typed record in Avro binary, in the Confluent
	// wire format (magic byte 0, 4-byte schema id, payload).
	FormatAvro
	// FormatJSONSchema is the typed record as JSON, in the Confluent
	// wire format, described by a JSON Schema.
	FormatJSONSchema
)

var formatNames = [...]string{"raw", "json", "avro", "json-schema"}

func (f ValueFormat) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "unknown"
}

// ValueFormats lists the names of every value format.
func ValueFormats() []string { return formatNames[:] }

// ParseValueFormat returns the format named s ("" is raw).
func ParseValueFormat(s string) (ValueFormat, bool) {
	if s == "" {
		return FormatRaw, true
	}
	for i, n := range formatNames {
		if n == s {
			return ValueFormat(i), true
		}
	}
	return 0, false
}

// Registered reports whether the format's values need a schema from a
// Schema Registry (avro, json-schema).
func (f ValueFormat) Registered() bool { return f == FormatAvro || f == FormatJSONSchema }

// ContentType is the content-type header of the records in format f.
func (f ValueFormat) ContentType() string {
	switch f {
	case FormatAvro:
		return ContentTypeAvro
	case FormatJSONSchema:
		return ContentTypeJSONSchema
	}
	return ContentTypeJSON
}

// The content types of typed records (markers stay application/json).
const (
	ContentTypeAvro       = "application/vnd.apache.avro+confluent"
	ContentTypeJSONSchema = "application/vnd.schema+json+confluent"
)

// ExtraMembers is the field of a typed record (avro, json-schema) that
// carries every member of the line that is not a documented column of its
// export, or whose value does not have the column's type: member name to
// its normalised JSON text (Avro) or value (JSON Schema). Nothing of a
// line is lost.
const ExtraMembers = "ExtraMembers"

// ValueCounts counts what a ValueEncoder kept without typing it.
type ValueCounts struct {
	// NotJSON counts the members of columns documented as JSON in a
	// string (DeviceGatheredInfo, AdditionalFields) whose string is not
	// JSON: kept as the string.
	NotJSON int64
	// Mistyped counts the members of documented columns whose value does
	// not have the column's type (a string CvssScore): carried in
	// ExtraMembers (avro, json-schema).
	Mistyped int64
}

// ValueEncoder turns the lines of one export into record values of one
// format. It reuses its buffers: one encoder per goroutine; once they have
// grown, encoding allocates nothing.
type ValueEncoder struct {
	format   ValueFormat
	cols     []Column
	byName   map[string]int // lower-case column name → index in cols
	header   [5]byte        // the Confluent wire format prefix
	n        normaliser
	norm     []byte
	members  []member
	byCol    []int32
	tmp      []byte
	counts   ValueCounts
	nameBuf  [64]byte
	schemaID uint32
}

// member is one top-level member of the normalised line: spans of c.norm.
type member struct {
	nameStart, nameEnd   int32 // the quoted name
	valueStart, valueEnd int32
	col                  int32 // the documented column, -1: none
	typed                bool  // col >= 0, first of its column, of the column's type
}

// NewValueEncoder returns an encoder of export e's lines in format f;
// schemaID is the registry's id of the export's schema (avro,
// json-schema).
func NewValueEncoder(e Export, f ValueFormat, schemaID uint32) *ValueEncoder {
	c := &ValueEncoder{format: f, cols: e.Columns, byName: make(map[string]int, len(e.Columns)), schemaID: schemaID}
	for i, col := range e.Columns {
		c.byName[string(lowerASCII(nil, []byte(col.Name)))] = i
	}
	c.byCol = make([]int32, len(e.Columns))
	c.header[0] = 0
	binary.BigEndian.PutUint32(c.header[1:], schemaID)
	return c
}

// Counts returns what the encoder has counted so far.
func (c *ValueEncoder) Counts() ValueCounts { return c.counts }

// Encode appends the value of line (a JSON object Keys.Read accepted) to
// dst. A raw encoder appends the line as it is.
func (c *ValueEncoder) Encode(dst, line []byte) ([]byte, error) {
	if c.format == FormatRaw {
		return append(dst, line...), nil
	}
	if err := c.normalise(line); err != nil {
		return dst, err
	}
	switch c.format {
	case FormatAvro:
		return c.avro(append(dst, c.header[:]...)), nil
	case FormatJSONSchema:
		return c.jsonSchema(append(dst, c.header[:]...)), nil
	}
	return append(dst, c.norm...), nil
}

// normalise normalises the line into c.norm, noting its top-level members
// and matching them to the export's columns.
func (c *ValueEncoder) normalise(v []byte) error {
	c.norm, c.members = c.norm[:0], c.members[:0]
	for i := range c.byCol {
		c.byCol[i] = -1
	}
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return errors.New("schema: normalising: the line is not a JSON object")
	}
	c.norm = append(c.norm, '{')
	if i = skipWS(v, i+1); i < len(v) && v[i] == '}' {
		c.norm = append(c.norm, '}')
		return nil
	}
	for {
		end, content, escaped, ok := c.n.scan(v, i, 0)
		if !ok {
			return errSyntax
		}
		m := member{nameStart: int32(len(c.norm)), col: -1}
		c.norm = appendStringContent(c.norm, v[i+1:end-1], content, escaped)
		m.nameEnd = int32(len(c.norm))
		if i = skipWS(v, end); i >= len(v) || v[i] != ':' {
			return errSyntax
		}
		c.norm = append(c.norm, ':')
		m.valueStart = int32(len(c.norm))
		var err error
		if c.norm, i, err = c.n.value(c.norm, v, i+1, 0, 1); err != nil {
			return err
		}
		m.valueEnd = int32(len(c.norm))
		c.classify(&m)
		c.members = append(c.members, m)
		if i = skipWS(v, i); i >= len(v) {
			return errSyntax
		}
		switch v[i] {
		case ',':
			c.norm = append(c.norm, ',')
			i = skipWS(v, i+1)
		case '}':
			c.norm = append(c.norm, '}')
			return nil
		default:
			return errSyntax
		}
	}
}

// classify matches member m to its column and checks its type.
func (c *ValueEncoder) classify(m *member) {
	name := c.norm[m.nameStart+1 : m.nameEnd-1]
	if len(name) > len(c.nameBuf) {
		return
	}
	col, ok := c.byName[string(lowerASCII(c.nameBuf[:0], name))]
	if !ok {
		return
	}
	m.col = int32(col)
	v := c.norm[m.valueStart:m.valueEnd]
	t := c.cols[col].Type
	if t == TypeJSONString && v[0] == '"' {
		c.counts.NotJSON++
	}
	if !c.format.Registered() {
		return
	}
	if !hasType(v, t) {
		c.counts.Mistyped++
		return
	}
	if c.byCol[col] >= 0 { // a second member of the column: an extra one
		return
	}
	c.byCol[col] = int32(len(c.members))
	m.typed = true
}

// hasType reports whether the normalised value v has column type t
// (null has every type).
func hasType(v []byte, t ColumnType) bool {
	switch v[0] {
	case 'n':
		return true
	case '"':
		return t == TypeString || t == TypeTime
	case 't', 'f':
		return t == TypeBool
	case '{':
		return t == TypeJSONString || t == TypeObject
	case '[':
		if t == TypeJSONString || t == TypeObject {
			return true
		}
		if t != TypeStrings {
			return false
		}
		ok := true
		eachElement(v, func(e []byte) {
			if e[0] != '"' {
				ok = false
			}
		})
		return ok
	}
	switch t {
	case TypeInt:
		_, err := strconv.ParseInt(unsafeString(v), 10, 64)
		return err == nil
	case TypeDouble:
		_, err := strconv.ParseFloat(unsafeString(v), 64)
		return err == nil
	}
	return false
}

// eachElement calls f with every element of the compact JSON array v.
func eachElement(v []byte, f func(e []byte)) {
	depth, in, start := 0, false, 1
	for i := 1; i < len(v)-1; i++ {
		switch b := v[i]; {
		case in:
			if b == '\\' {
				i++
			} else if b == '"' {
				in = false
			}
		case b == '"':
			in = true
		case b == '{' || b == '[':
			depth++
		case b == '}' || b == ']':
			depth--
		case b == ',' && depth == 0:
			f(v[start:i])
			start = i + 1
		}
	}
	if len(v) > 2 {
		f(v[start : len(v)-1])
	}
}

// avro appends the Avro binary encoding of the record: the documented
// columns in their order (each a union of null and its type), then the
// ExtraMembers map.
func (c *ValueEncoder) avro(dst []byte) []byte {
	for col, mi := range c.byCol {
		if mi < 0 {
			dst = append(dst, 0) // union branch 0: null
			continue
		}
		m := c.members[mi]
		v := c.norm[m.valueStart:m.valueEnd]
		if v[0] == 'n' {
			dst = append(dst, 0)
			continue
		}
		dst = append(dst, 2) // union branch 1
		switch c.cols[col].Type {
		case TypeString, TypeTime:
			dst = c.avroString(dst, v)
		case TypeInt:
			n, _ := strconv.ParseInt(unsafeString(v), 10, 64)
			dst = appendLong(dst, n)
		case TypeDouble:
			f, _ := strconv.ParseFloat(unsafeString(v), 64)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
		case TypeBool:
			dst = append(dst, boolByte(v[0] == 't'))
		case TypeStrings:
			n := 0
			eachElement(v, func([]byte) { n++ })
			if n > 0 {
				dst = appendLong(dst, int64(n))
				eachElement(v, func(e []byte) { dst = c.avroString(dst, e) })
			}
			dst = append(dst, 0)
		default: // JSON in a string, object: its normalised JSON text
			dst = appendLong(dst, int64(len(v)))
			dst = append(dst, v...)
		}
	}
	extras := 0
	for _, m := range c.members {
		if !m.typed {
			extras++
		}
	}
	if extras > 0 {
		dst = appendLong(dst, int64(extras))
		for _, m := range c.members {
			if !m.typed {
				dst = c.avroString(dst, c.norm[m.nameStart:m.nameEnd])
				dst = appendLong(dst, int64(m.valueEnd-m.valueStart))
				dst = append(dst, c.norm[m.valueStart:m.valueEnd]...)
			}
		}
	}
	return append(dst, 0)
}

// avroString appends the JSON string q (with its quotes) as an Avro
// string: its length, then its unescaped UTF-8.
func (c *ValueEncoder) avroString(dst, q []byte) []byte {
	raw := q[1 : len(q)-1]
	for _, b := range raw {
		if b == '\\' {
			c.tmp = appendUnescaped(c.tmp[:0], raw)
			raw = c.tmp
			break
		}
	}
	dst = appendLong(dst, int64(len(raw)))
	return append(dst, raw...)
}

// jsonSchema appends the typed record as JSON: the members of documented
// columns under their documented names, in the line's order, then
// ExtraMembers when there are others.
func (c *ValueEncoder) jsonSchema(dst []byte) []byte {
	dst = append(dst, '{')
	n := 0
	for _, m := range c.members {
		if !m.typed {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, '"')
		dst = append(dst, c.cols[m.col].Name...)
		dst = append(dst, '"', ':')
		dst = append(dst, c.norm[m.valueStart:m.valueEnd]...)
	}
	extras := 0
	for _, m := range c.members {
		if m.typed {
			continue
		}
		if extras == 0 {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `"`+ExtraMembers+`":{`...)
		} else {
			dst = append(dst, ',')
		}
		extras++
		dst = append(dst, c.norm[m.nameStart:m.valueEnd]...)
	}
	if extras > 0 {
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendLong appends n as an Avro long: zig-zag, then a varint.
func appendLong(dst []byte, n int64) []byte {
	u := uint64(n<<1) ^ uint64(n>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// lowerASCII appends b with its ASCII letters in lower case.
func lowerASCII(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, lower(c))
	}
	return dst
}

// unsafeString views b as a string for the length of a call that does not
// keep it (strconv's parsers).
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
