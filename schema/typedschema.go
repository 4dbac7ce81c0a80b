package schema

import (
	"encoding/json"
	"strings"
)

// AvroNamespace is the namespace of the exports' Avro records.
const AvroNamespace = "com.microsoft.defender.vm"

// avroTypes are the Avro types of the column types; JSON held in a string
// and objects are carried as their normalised JSON text, because their
// members are not documented and vary with the Defender agent (README
// "Typed topics").
var avroTypes = [...]any{
	TypeString:     "string",
	TypeInt:        "long",
	TypeDouble:     "double",
	TypeBool:       "boolean",
	TypeTime:       "string",
	TypeStrings:    map[string]any{"type": "array", "items": "string"},
	TypeJSONString: "string",
	TypeObject:     "string",
}

type avroField struct {
	Name    string `json:"name"`
	Type    any    `json:"type"`
	Doc     string `json:"doc,omitempty"`
	Default any    `json:"default"`
}

type avroRecord struct {
	Type      string      `json:"type"`
	Name      string      `json:"name"`
	Namespace string      `json:"namespace"`
	Doc       string      `json:"doc"`
	Fields    []avroField `json:"fields"`
}

// AvroSchema returns the Avro schema of export e's typed records: a record
// named after the export, one optional field (a union of null and the
// column's type, default null) per documented column in their declared
// order, and ExtraMembers, a map of member name to normalised JSON text
// (default empty). A column added to the declaration is a new optional
// field: BACKWARD compatible.
func AvroSchema(e Export) string {
	r := avroRecord{Type: "record", Name: e.Name, Namespace: AvroNamespace, Doc: "Defender " + e.Name + ": " + e.Record}
	for _, c := range e.Columns {
		r.Fields = append(r.Fields, avroField{Name: c.Name, Type: []any{"null", avroTypes[c.Type]}, Doc: c.Type.String()})
	}
	r.Fields = append(r.Fields, avroField{Name: ExtraMembers, Type: map[string]any{"type": "map", "values": "string"},
		Doc: "members that are not documented columns, or not of their column's type: name to JSON text", Default: map[string]any{}})
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // static types only
	}
	return string(b)
}

// jsonSchemaTypes are the JSON Schema types of the column types.
var jsonSchemaTypes = [...]any{
	TypeString:     []string{"string", "null"},
	TypeInt:        []string{"integer", "null"},
	TypeDouble:     []string{"number", "null"},
	TypeBool:       []string{"boolean", "null"},
	TypeTime:       []string{"string", "null"},
	TypeStrings:    []string{"array", "null"},
	TypeJSONString: []string{"object", "array", "null"},
	TypeObject:     []string{"object", "array", "null"},
}

// JSONSchema returns the JSON Schema (draft-07) of export e's typed
// records: an object whose properties are the documented columns (each
// nullable), closed (additionalProperties false), with ExtraMembers, an
// object holding every other member. A column added to the declaration is
// a new optional property of a closed model: BACKWARD compatible.
func JSONSchema(e Export) string {
	var b strings.Builder
	b.WriteString(`{"$schema":"http://json-schema.org/draft-07/schema#","title":`)
	writeJSON(&b, e.Name)
	b.WriteString(`,"description":`)
	writeJSON(&b, "Defender "+e.Name+": "+e.Record)
	b.WriteString(`,"type":"object","additionalProperties":false,"properties":{`)
	for _, c := range e.Columns {
		writeJSON(&b, c.Name)
		b.WriteString(`:{"type":`)
		writeJSON(&b, jsonSchemaTypes[c.Type])
		if c.Type == TypeStrings {
			b.WriteString(`,"items":{"type":"string"}`)
		}
		b.WriteString(`},`)
	}
	b.WriteString(`"` + ExtraMembers + `":{"type":"object","description":"members that are not documented columns, or not of their column's type"}}}`)
	return b.String()
}

func writeJSON(b *strings.Builder, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		panic(err) // static types only
	}
	b.Write(out)
}
