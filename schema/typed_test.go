package schema_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

const testSchemaID = 0x01020304

// typedDecoder reads typed values back with independent libraries: Avro
// with hamba/avro, JSON Schema validated with santhosh-tekuri/jsonschema.
type typedDecoder struct {
	avro avro.Schema
	json *jsonschema.Schema
}

func newTypedDecoder(t testing.TB, e schema.Export) typedDecoder {
	t.Helper()
	as, err := avro.Parse(schema.AvroSchema(e))
	if err != nil {
		t.Fatalf("%s: Avro schema: %v", e.Name, err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema.JSONSchema(e)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("mem://"+e.Name+".json", doc); err != nil {
		t.Fatal(err)
	}
	js, err := c.Compile("mem://" + e.Name + ".json")
	if err != nil {
		t.Fatalf("%s: JSON Schema: %v", e.Name, err)
	}
	return typedDecoder{avro: as, json: js}
}

// payload checks the Confluent wire format prefix and returns the payload.
func payload(t testing.TB, v []byte) []byte {
	t.Helper()
	if len(v) < 5 || v[0] != 0 || binary.BigEndian.Uint32(v[1:5]) != testSchemaID {
		t.Fatalf("value %x does not start with magic byte 0 and schema id %d", v[:min(len(v), 5)], testSchemaID)
	}
	return v[5:]
}

// fromAvro decodes an Avro value into the members it carries: the
// non-null fields and the extra members, keyed by lower-case name.
func (d typedDecoder) fromAvro(t testing.TB, e schema.Export, v []byte) map[string]any {
	t.Helper()
	var rec map[string]any
	if err := avro.Unmarshal(d.avro, payload(t, v), &rec); err != nil {
		t.Fatalf("Avro: %v", err)
	}
	out := map[string]any{}
	for _, c := range e.Columns {
		f := rec[c.Name]
		if f == nil {
			continue
		}
		switch c.Type {
		case schema.TypeJSONString, schema.TypeObject:
			out[strings.ToLower(c.Name)] = decodeJSON(t, []byte(f.(string)))
		case schema.TypeStrings: // a union's branch other than a primitive: {"array": …}
			out[strings.ToLower(c.Name)] = roundTrip(t, f.(map[string]any)["array"])
		default:
			out[strings.ToLower(c.Name)] = roundTrip(t, f)
		}
	}
	for name, text := range rec[schema.ExtraMembers].(map[string]any) {
		if x := decodeJSON(t, []byte(text.(string))); x != nil {
			out[strings.ToLower(name)] = x
		}
	}
	return out
}

// fromJSONSchema validates a json-schema value and returns its members
// with the extra ones merged in, keyed by lower-case name.
func (d typedDecoder) fromJSONSchema(t testing.TB, v []byte) map[string]any {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload(t, v)))
	if err != nil {
		t.Fatalf("json-schema value %s: %v", v[5:], err)
	}
	if err := d.json.Validate(doc); err != nil {
		t.Fatalf("json-schema value %s does not validate: %v", v[5:], err)
	}
	rec := decodeJSON(t, v[5:]).(map[string]any)
	extras, _ := rec[schema.ExtraMembers].(map[string]any)
	delete(rec, schema.ExtraMembers)
	for k, x := range extras {
		rec[k] = x
	}
	return lowerNonNull(rec)
}

func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// roundTrip gives a decoded Avro value the form encoding/json gives it.
func roundTrip(t testing.TB, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return decodeJSON(t, b)
}

func lowerNonNull(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if v != nil {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

// normalised is what every typed value must carry: the normalised line's
// non-null members.
func normalised(t testing.TB, line []byte) map[string]any {
	t.Helper()
	n, err := schema.Normalise(nil, line)
	if err != nil {
		t.Fatal(err)
	}
	return lowerNonNull(decodeJSON(t, n).(map[string]any))
}

// TestTypedValuesEveryExport: for every export, the avro and json-schema
// values of synthetic records decode with independent libraries, validate
// against the generated schemas and carry every member of the normalised
// line (nothing lost), with the Confluent wire format prefix.
func TestTypedValuesEveryExport(t *testing.T) {
	for _, e := range schema.Exports() {
		t.Run(e.Short, func(t *testing.T) {
			d := newTypedDecoder(t, e)
			av := schema.NewValueEncoder(e, schema.FormatAvro, testSchemaID)
			js := schema.NewValueEncoder(e, schema.FormatJSONSchema, testSchemaID)
			opts := synth.Options{Export: e.Name, Devices: 60, Seed: 7}
			for i := 0; i < opts.Devices; i++ {
				line := synth.Record(opts, i)
				want := normalised(t, line)
				a, err := av.Encode(nil, line)
				if err != nil {
					t.Fatal(err)
				}
				if got := d.fromAvro(t, e, a); !reflect.DeepEqual(got, want) {
					t.Fatalf("avro record %d:\n got %v\nwant %v", i, got, want)
				}
				j, err := js.Encode(nil, line)
				if err != nil {
					t.Fatal(err)
				}
				if got := d.fromJSONSchema(t, j); !reflect.DeepEqual(got, want) {
					t.Fatalf("json-schema record %d:\n got %v\nwant %v", i, got, want)
				}
			}
			if c := av.Counts(); c != (schema.ValueCounts{}) {
				t.Errorf("synthetic records counted %+v, want nothing mistyped", c)
			}
		})
	}
}

// TestTypedValuesBadInput: members of the wrong type, undocumented ones,
// a second member of a column and JSON-in-a-string columns whose string is
// not JSON are carried in ExtraMembers and counted, never dropped.
func TestTypedValuesBadInput(t *testing.T) {
	vulns, _ := schema.LookupExport("SoftwareVulnerabilitiesExport")
	info, _ := schema.LookupExport(schema.ExportInfoGathering)
	for _, tc := range []struct {
		name     string
		e        schema.Export
		line     string
		extras   []string // members that must be in ExtraMembers
		notJSON  int64
		mistyped int64
	}{
		{"string CvssScore", vulns, `{"DeviceId":"d","CvssScore":"high","CveId":"CVE-1"}`, []string{"CvssScore"}, 0, 1},
		{"fraction in an int column", vulns, `{"DeviceId":"d","RbacGroupId":1.5}`, []string{"RbacGroupId"}, 0, 1},
		{"number in a string column", vulns, `{"DeviceId":7}`, []string{"DeviceId"}, 0, 1},
		{"array of numbers in a string array column", vulns, `{"DeviceId":"d","DiskPaths":[1,2]}`, []string{"DiskPaths"}, 0, 1},
		{"undocumented member", vulns, `{"DeviceId":"d","NewColumn":{"a":[1,"2024-01-01 00:00:00"]}}`, []string{"NewColumn"}, 0, 0},
		{"a column twice", vulns, `{"DeviceId":"d","CveId":"a","cveid":"b"}`, []string{"cveid"}, 0, 0},
		{"DeviceGatheredInfo not JSON", info, `{"DeviceId":"d","DeviceGatheredInfo":"{oops"}`, []string{"DeviceGatheredInfo"}, 1, 1},
		{"case of a column ignored", vulns, `{"deviceid":"d","cvssscore":9.8}`, nil, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTypedDecoder(t, tc.e)
			want := normalised(t, []byte(tc.line))
			for _, f := range []schema.ValueFormat{schema.FormatAvro, schema.FormatJSONSchema} {
				enc := schema.NewValueEncoder(tc.e, f, testSchemaID)
				v, err := enc.Encode(nil, []byte(tc.line))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				var got map[string]any
				if f == schema.FormatAvro {
					got = d.fromAvro(t, tc.e, v)
				} else {
					got = d.fromJSONSchema(t, v)
					rec := decodeJSON(t, v[5:]).(map[string]any)
					extras, _ := rec[schema.ExtraMembers].(map[string]any)
					for _, name := range tc.extras {
						if _, ok := extras[name]; !ok {
							t.Errorf("%s: %s not in %s of %s", f, name, schema.ExtraMembers, v[5:])
						}
					}
					if len(extras) != len(tc.extras) {
						t.Errorf("%s: %s = %v, want just %v", f, schema.ExtraMembers, extras, tc.extras)
					}
				}
				if tc.name != "a column twice" && !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %v, want %v", f, got, want)
				}
				if c := enc.Counts(); c.NotJSON != tc.notJSON || c.Mistyped != tc.mistyped {
					t.Errorf("%s: counted %+v, want NotJSON %d, Mistyped %d", f, c, tc.notJSON, tc.mistyped)
				}
			}
			enc := schema.NewValueEncoder(tc.e, schema.FormatJSON, 0)
			v, err := enc.Encode(nil, []byte(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			if got := lowerNonNull(decodeJSON(t, v).(map[string]any)); tc.name != "a column twice" && !reflect.DeepEqual(got, want) {
				t.Errorf("json: got %v, want %v", got, want)
			}
			if c := enc.Counts(); c.NotJSON != tc.notJSON || c.Mistyped != 0 {
				t.Errorf("json: counted %+v, want NotJSON %d and nothing mistyped", c, tc.notJSON)
			}
		})
	}
}

// TestValueEncoderAllocations: once its buffers have grown, encoding a
// line allocates nothing, in every format.
func TestValueEncoderAllocations(t *testing.T) {
	for _, e := range schema.Exports() {
		opts := synth.Options{Export: e.Name, Devices: 20, Seed: 3}
		lines := make([][]byte, opts.Devices)
		for i := range lines {
			lines[i] = synth.Record(opts, i)
		}
		for _, f := range []schema.ValueFormat{schema.FormatJSON, schema.FormatAvro, schema.FormatJSONSchema} {
			enc := schema.NewValueEncoder(e, f, testSchemaID)
			var dst []byte
			for _, l := range lines { // grow the buffers
				dst, _ = enc.Encode(dst[:0], l)
			}
			allocs := testing.AllocsPerRun(5, func() {
				for _, l := range lines {
					dst, _ = enc.Encode(dst[:0], l)
				}
			})
			if allocs != 0 {
				t.Errorf("%s %s: %v allocations for %d lines, want 0", e.Short, f, allocs, len(lines))
			}
		}
	}
}

// TestSchemasCompatibleShape: every export's Avro schema parses, names
// every documented column once and ExtraMembers last; the JSON Schema is
// closed.
func TestSchemasCompatibleShape(t *testing.T) {
	for _, e := range schema.Exports() {
		as := newTypedDecoder(t, e).avro.(*avro.RecordSchema)
		fields := as.Fields()
		if len(fields) != len(e.Columns)+1 || fields[len(fields)-1].Name() != schema.ExtraMembers {
			t.Fatalf("%s: %d fields, want %d columns and %s", e.Name, len(fields), len(e.Columns), schema.ExtraMembers)
		}
		for i, c := range e.Columns {
			if fields[i].Name() != c.Name || !fields[i].HasDefault() || fields[i].Default() != nil {
				t.Errorf("%s: field %d is %s, want optional %s", e.Name, i, fields[i].Name(), c.Name)
			}
		}
		var js map[string]any
		if err := json.Unmarshal([]byte(schema.JSONSchema(e)), &js); err != nil || js["additionalProperties"] != false {
			t.Errorf("%s: JSON Schema not closed: %v", e.Name, err)
		}
	}
}

func BenchmarkValueEncoder(b *testing.B) {
	opts := synth.Options{Devices: 1000, Seed: 1}
	lines := make([][]byte, opts.Devices)
	size := 0
	for i := range lines {
		lines[i] = synth.Record(opts, i)
		size += len(lines[i])
	}
	info, _ := schema.LookupExport(schema.ExportInfoGathering)
	for _, f := range []schema.ValueFormat{schema.FormatRaw, schema.FormatJSON, schema.FormatAvro, schema.FormatJSONSchema} {
		b.Run(fmt.Sprint(f), func(b *testing.B) {
			enc := schema.NewValueEncoder(info, f, testSchemaID)
			var dst []byte
			b.SetBytes(int64(size / len(lines)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				dst, _ = enc.Encode(dst[:0], lines[i%len(lines)])
			}
		})
	}
}

// FuzzTypedValues: any line that would be published gives an Avro value
// that decodes and a JSON Schema value that validates, carrying every
// member of the normalised line.
func FuzzTypedValues(f *testing.F) {
	f.Add([]byte(`{"DeviceId":"d","CvssScore":"x","DiskPaths":["a",1],"X":"{\"a\":\"2024-01-01 00:00:00\"}"}`))
	f.Add([]byte(`{"DeviceId":"d","RbacGroupId":12,"DiskPaths":["a","b"],"SecurityUpdateAvailable":true}`))
	vulns, _ := schema.LookupExport("SoftwareVulnerabilitiesExport")
	d := newTypedDecoder(f, vulns)
	av := schema.NewValueEncoder(vulns, schema.FormatAvro, testSchemaID)
	js := schema.NewValueEncoder(vulns, schema.FormatJSONSchema, testSchemaID)
	f.Fuzz(func(t *testing.T, line []byte) {
		if _, _, err := schema.NewKeys(nil).Read(line); err != nil {
			return
		}
		if bytes.Contains(bytes.ToLower(line), []byte(`"extramembers"`)) {
			return // a member named like the field holding the extra ones
		}
		want := normalised(t, line)
		a, err := av.Encode(nil, line)
		if err != nil {
			t.Fatal(err)
		}
		j, err := js.Encode(nil, line)
		if err != nil {
			t.Fatal(err)
		}
		ga, gj := d.fromAvro(t, vulns, a), d.fromJSONSchema(t, j)
		if duplicateNames(t, line) {
			return
		}
		if !reflect.DeepEqual(ga, want) || !reflect.DeepEqual(gj, want) {
			t.Fatalf("%s:\n avro %v\n json-schema %v\n want %v", line, ga, gj, want)
		}
	})
}

func duplicateNames(t *testing.T, line []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.Token()
	seen := map[string]bool{}
	for dec.More() {
		tok, _ := dec.Token()
		name := strings.ToLower(tok.(string))
		if seen[name] {
			return true
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return false
}
