package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// The schemas and examples of docs/typed.md are generated from the
// declaration and the encoders; `go test ./cmd/tvm2kafka -run
// TestTypedDocs -update-readme` rewrites them.
func TestTypedDocs(t *testing.T) {
	checkGenerated(t, "../../docs/typed.md", "typed", typedPage(t), "TestTypedDocs")
}

// exampleLine is the InfoGathering line of the examples.
const exampleLine = `{"DeviceId":"c054b6e15bbe2b0cc90844aee859ba26f780493c","DeviceName":"dc-03.hq.woodgrove.org","OsPlatform":"WindowsServer2019","RbacGroupId":0,"LastSeenTime":"2026-11-21 21:41:32","DeviceGatheredInfo":"{\"AvMode\":\"0\",\"AvScanResults\":\"{\\\"Quick\\\":{\\\"ScanStatus\\\":\\\"Cancelled\\\"}}\",\"TlsClient10\":\"Enabled\"}","NewMember":true}`

func typedPage(t *testing.T) string {
	info, _ := schema.LookupExport(schema.ExportInfoGathering)
	vulns, _ := schema.LookupExport("SoftwareVulnerabilitiesExport")
	var b strings.Builder
	enc := func(f schema.ValueFormat) []byte {
		v, err := schema.NewValueEncoder(info, f, 42).Encode(nil, []byte(exampleLine))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	fmt.Fprintf(&b, "One InfoGathering line (shortened) in the four formats; the typed ones with schema id 42.\n\n")
	fmt.Fprintf(&b, "`raw` (Defender's line, byte for byte):\n\n```json\n%s\n```\n\n", exampleLine)
	fmt.Fprintf(&b, "`json` (normalised):\n\n```json\n%s\n```\n\n", enc(schema.FormatJSON))
	js := enc(schema.FormatJSONSchema)
	fmt.Fprintf(&b, "`json-schema`: bytes `%s` (magic byte 0, schema id 42), then\n\n```json\n%s\n```\n\n", hex.EncodeToString(js[:5]), js[5:])
	av := enc(schema.FormatAvro)
	fmt.Fprintf(&b, "`avro`: bytes `%s`, then the Avro binary encoding (%d bytes), which reads as\n\n", hex.EncodeToString(av[:5]), len(av)-5)
	fmt.Fprintf(&b, "```json\n%s\n```\n\n", avroAsJSON(t, info, js[5:]))
	for _, e := range []schema.Export{info, vulns} {
		fmt.Fprintf(&b, "#### %s: Avro schema\n\n```json\n%s\n```\n\n", e.Name, indent(t, schema.AvroSchema(e)))
		fmt.Fprintf(&b, "#### %s: JSON Schema\n\n```json\n%s\n```\n\n", e.Name, indent(t, schema.JSONSchema(e)))
	}
	return b.String()
}

// avroAsJSON shows the fields an Avro reader sees for the JSON Schema
// payload js (the same typed record): every column, null when absent,
// nested JSON as its text, ExtraMembers as JSON text.
func avroAsJSON(t *testing.T, e schema.Export, js []byte) string {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(js, &rec); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("{")
	for _, c := range e.Columns {
		v, ok := rec[c.Name]
		switch {
		case !ok:
			v = json.RawMessage("null")
		case c.Type == schema.TypeJSONString || c.Type == schema.TypeObject:
			s, _ := json.Marshal(string(v))
			v = s
		}
		fmt.Fprintf(&b, "%q:%s,", c.Name, v)
	}
	var extras map[string]json.RawMessage
	_ = json.Unmarshal(rec[schema.ExtraMembers], &extras)
	b.WriteString(`"` + schema.ExtraMembers + `":{`)
	first := true
	for k, v := range extras {
		if !first {
			b.WriteString(",")
		}
		first = false
		s, _ := json.Marshal(string(v))
		fmt.Fprintf(&b, "%q:%s", k, s)
	}
	b.WriteString("}}")
	return indent(t, b.String())
}

func indent(t *testing.T, s string) string {
	var out bytes.Buffer
	if err := json.Indent(&out, []byte(s), "", "  "); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return out.String()
}
