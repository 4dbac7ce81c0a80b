//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/hamba/avro/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/verify"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// typedReader decodes typed values with the consumers' libraries: the
// schema looked up by the id in the value, in the real registry, through
// franz-go's sr client and serde; Avro with hamba/avro, JSON Schema
// validated with santhosh-tekuri/jsonschema.
type typedReader struct {
	t      *testing.T
	format string
	cl     *sr.Client
	serde  *sr.Serde
	json   map[int]*jsonschema.Schema
	ids    map[int]bool
}

func newTypedReader(t *testing.T, registryURL, format string) *typedReader {
	cl, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		t.Fatal(err)
	}
	return &typedReader{t: t, format: format, cl: cl, serde: sr.NewSerde(), json: map[int]*jsonschema.Schema{}, ids: map[int]bool{}}
}

// members decodes value into its members (documented fields and the extra
// ones, lower-case names, nulls left out), as decodeJSON gives them.
func (r *typedReader) members(e schema.Export, value []byte) map[string]any {
	t := r.t
	t.Helper()
	id, payload, err := r.serde.DecodeID(value)
	if err != nil {
		t.Fatalf("value %.20q: not the Confluent wire format: %v", value, err)
	}
	if !r.ids[id] {
		s, err := r.cl.SchemaByID(context.Background(), id)
		if err != nil {
			t.Fatalf("schema %d from the registry: %v", id, err)
		}
		switch r.format {
		case "avro":
			as, err := avro.Parse(s.Schema)
			if err != nil {
				t.Fatal(err)
			}
			r.serde.Register(id, map[string]any{}, sr.DecodeFn(func(b []byte, v any) error { return avro.Unmarshal(as, b, v) }))
		default:
			doc, err := jsonschema.UnmarshalJSON(strings.NewReader(s.Schema))
			if err != nil {
				t.Fatal(err)
			}
			c := jsonschema.NewCompiler()
			loc := fmt.Sprintf("mem://schema-%d.json", id)
			if err := c.AddResource(loc, doc); err != nil {
				t.Fatal(err)
			}
			if r.json[id], err = c.Compile(loc); err != nil {
				t.Fatal(err)
			}
		}
		r.ids[id] = true
	}
	out := map[string]any{}
	put := func(name string, v any) {
		if v != nil {
			out[strings.ToLower(name)] = v
		}
	}
	if r.format == "json-schema" {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.json[id].Validate(doc); err != nil {
			t.Fatalf("value %s does not validate against schema %d: %v", payload, id, err)
		}
		var rec map[string]any
		mustUnmarshal(t, payload, &rec)
		extras, _ := rec[schema.ExtraMembers].(map[string]any)
		delete(rec, schema.ExtraMembers)
		for k, v := range rec {
			put(k, v)
		}
		for k, v := range extras {
			put(k, v)
		}
		return out
	}
	rec := map[string]any{}
	if err := r.serde.Decode(value, &rec); err != nil {
		t.Fatalf("Avro value: %v", err)
	}
	for _, c := range e.Columns {
		v := rec[c.Name]
		switch {
		case v == nil:
		case c.Type == schema.TypeJSONString || c.Type == schema.TypeObject:
			var x any
			mustUnmarshal(t, []byte(v.(string)), &x)
			put(c.Name, x)
		case c.Type == schema.TypeStrings:
			put(c.Name, jsonRoundTrip(t, v.(map[string]any)["array"]))
		default:
			put(c.Name, jsonRoundTrip(t, v))
		}
	}
	for k, text := range rec[schema.ExtraMembers].(map[string]any) {
		var x any
		mustUnmarshal(t, []byte(text.(string)), &x)
		put(k, x)
	}
	return out
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%.200s: %v", b, err)
	}
}

func jsonRoundTrip(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	mustUnmarshal(t, b, &out)
	return out
}

// normalisedMembers is what a typed record of line must carry.
func normalisedMembers(t *testing.T, line []byte) map[string]any {
	n, err := schema.Normalise(nil, line)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	mustUnmarshal(t, n, &rec)
	out := map[string]any{}
	for k, v := range rec {
		if v != nil {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

// TestTypedValuesThroughTheRegistry: KAFKA_VALUE_FORMAT=avro and
// json-schema end to end, for InfoGathering and vulnerabilities, against
// the real broker and the rig's Apicurio Registry: the schema is
// registered under <topic>-value with BACKWARD compatibility, every record
// is read back by id through franz-go's serde and decodes (Avro) or
// validates (JSON Schema) into every member of its normalised line, the
// markers stay JSON with content-type application/json, the snapshot is
// complete, and the CloudEvents headers decode with the CloudEvents SDK's
// Kafka (sarama) binding into valid events.
func TestTypedValuesThroughTheRegistry(t *testing.T) {
	for _, tc := range []struct{ format, export string }{
		{"avro", schema.ExportInfoGathering}, {"avro", vulnerabilitiesExport},
		{"json-schema", schema.ExportInfoGathering}, {"json-schema", vulnerabilitiesExport},
	} {
		t.Run(tc.format+"/"+tc.export, func(t *testing.T) {
			e, _ := schema.LookupExport(tc.export)
			w := newWorldFor(t, tc.export, 120, 3)
			reg := w.rig.Registry(t)
			res := w.run(map[string]string{"MDE_EXPORT": tc.export, "KAFKA_VALUE_FORMAT": tc.format,
				"KAFKA_SCHEMA_REGISTRY_URL": reg, "TVM2KAFKA_CLOUDEVENTS": "true"})
			mustComplete(t, res)
			if !strings.Contains(res.Stderr, "schema registered") || !strings.Contains(res.Stderr, w.Topic+"-value") {
				t.Errorf("no \"schema registered\" line for %s-value:\n%s", w.Topic, tail(res.Stderr, 20))
			}
			cl, err := sr.NewClient(sr.URLs(reg))
			if err != nil {
				t.Fatal(err)
			}
			if c := cl.Compatibility(context.Background(), w.Topic+"-value")[0]; c.Err != nil || c.Level != sr.CompatBackward {
				t.Errorf("subject compatibility %v (%v), want BACKWARD", c.Level, c.Err)
			}
			msgs, rep := w.read(w.Topic)
			run := rep.Run(runID(t, res.Stderr))
			if run == nil || !run.Complete {
				t.Fatalf("run not complete: %+v", run)
			}
			want := map[string][]byte{}
			opts := w.opts
			for i := 0; i < opts.Devices; i++ {
				l := synth.Record(opts, i)
				_, natural, err := schema.NewKeys(e.Key).Read(l)
				if err != nil {
					t.Fatal(err)
				}
				want[string(natural)] = l
			}
			r := newTypedReader(t, reg, tc.format)
			records := 0
			for _, m := range msgs {
				checkCloudEvent(t, m, tc.export)
				if m.Headers[schema.HeaderMarker] != "" {
					if ct := m.Headers[schema.HeaderContentType]; ct != schema.ContentTypeJSON || !json.Valid(m.Value) {
						t.Errorf("marker %s: content-type %q, value %.80s: want JSON", m.Headers[schema.HeaderMarker], ct, m.Value)
					}
					continue
				}
				records++
				f, _ := schema.ParseValueFormat(tc.format)
				if ct := m.Headers[schema.HeaderContentType]; ct != f.ContentType() {
					t.Errorf("record content-type %q, want %q", ct, f.ContentType())
				}
				line, ok := want[m.Headers[schema.HeaderKey]]
				if !ok {
					t.Fatalf("record with mde.key %s not in the export", m.Headers[schema.HeaderKey])
				}
				if got, exp := r.members(e, m.Value), normalisedMembers(t, line); !reflect.DeepEqual(got, exp) {
					t.Fatalf("record %s:\n got %v\nwant %v", m.Headers[schema.HeaderKey], got, exp)
				}
			}
			if records != opts.Devices {
				t.Errorf("%d records, want %d", records, opts.Devices)
			}
			if tc.format == "avro" {
				checkWithApicurioSerde(t, w, reg, e, want)
			}
		})
	}
}

// checkWithApicurioSerde reads the Avro topic with an independent Java
// consumer: Apicurio Registry's own AvroKafkaDeserializer (serdes 2.6,
// Confluent id handler), the schema fetched from the registry by the id in
// each value; every record decodes into the members of its normalised line.
func checkWithApicurioSerde(t *testing.T, w *world, ccompat string, e schema.Export, want map[string][]byte) {
	t.Helper()
	v2 := strings.TrimSuffix(ccompat, "/apis/ccompat/v7") + "/apis/registry/v2"
	cmd := exec.Command("java", "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", streamsClasspath(t), "tvm2kafka.streams.TypedRecordsReader", w.rig.BrokerList(), w.Topic, v2)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("TypedRecordsReader: %v\n%s", err, tail(stderr.String(), 30))
	}
	byDevice := map[string]map[string]any{}
	for _, l := range want {
		id, err := schema.DeviceID(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, seen := byDevice[string(id)]; !seen || !e.ManyPerDevice() {
			byDevice[string(id)] = normalisedMembers(t, l)
		}
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		key, rec, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("TypedRecordsReader line %q", line)
		}
		n++
		var got map[string]any
		mustUnmarshal(t, []byte(rec), &got)
		if got["DeviceId"] != key {
			t.Fatalf("Java decoded DeviceId %v under key %s", got["DeviceId"], key)
		}
		if e.ManyPerDevice() {
			continue // several records a device: the key alone does not say which line
		}
		exp := byDevice[key]
		for _, c := range e.Columns {
			x, ok := exp[strings.ToLower(c.Name)]
			if !ok || c.Type == schema.TypeJSONString || c.Type == schema.TypeObject {
				continue
			}
			if g := jsonRoundTrip(t, got[c.Name]); !reflect.DeepEqual(g, x) {
				t.Errorf("device %s %s: Java read %v, want %v", key, c.Name, g, x)
			}
		}
	}
	if n != len(want) {
		t.Errorf("the Java consumer decoded %d records, want %d (%s)", n, len(want), strings.TrimSpace(stderr.String()))
	}
}

// checkCloudEvent decodes m with the CloudEvents SDK's sarama binding:
// binary mode, a valid event of the export's type.
func checkCloudEvent(t *testing.T, m verify.Message, export string) {
	t.Helper()
	cm := &sarama.ConsumerMessage{Key: m.Key, Value: m.Value, Partition: m.Partition, Offset: m.Offset}
	for k, v := range m.Headers {
		cm.Headers = append(cm.Headers, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	}
	msg := kafka_sarama.NewMessageFromConsumerMessage(cm)
	if enc := msg.ReadEncoding(); enc != binding.EncodingBinary {
		t.Fatalf("CloudEvents encoding %v, want binary", enc)
	}
	ev, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		t.Fatalf("not a CloudEvent: %v", err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("invalid CloudEvent: %v", err)
	}
	kind := "record"
	if mk := m.Headers[schema.HeaderMarker]; mk != "" {
		kind = mk
	}
	if ev.Type() != schema.CloudEventsType(export, kind) || ev.Source() != schema.CloudEventsSource("", export) {
		t.Errorf("event type %q source %q", ev.Type(), ev.Source())
	}
}

// TestTypedValuesRegistryFailures: a registry that does not answer, and
// one that refuses the schema (an incompatible one registered before
// under the subject): exit 1 before any marker, the message naming
// KAFKA_SCHEMA_REGISTRY_URL and the registry's answer; nothing published,
// and no export API call spent.
func TestTypedValuesRegistryFailures(t *testing.T) {
	w := newWorld(t, 20, 2)
	reg := w.rig.Registry(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now

	info, _ := schema.LookupExport(schema.ExportInfoGathering)
	refusing := w.Topic + "-refused"
	cl, err := sr.NewClient(sr.URLs(reg))
	if err != nil {
		t.Fatal(err)
	}
	changed := info
	changed.Columns = append([]schema.Column(nil), info.Columns...)
	for i := range changed.Columns {
		if changed.Columns[i].Name == "RbacGroupId" {
			changed.Columns[i].Type = schema.TypeBool
		}
	}
	if _, err := cl.CreateSchema(context.Background(), refusing+"-value", sr.Schema{Schema: schema.AvroSchema(changed), Type: sr.TypeAvro}); err != nil {
		t.Fatal(err)
	}
	if r := cl.SetCompatibility(context.Background(), sr.SetCompatibility{Level: sr.CompatBackward}, refusing+"-value")[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
	for _, tc := range []struct {
		name, url, topic string
		wants            []string
	}{
		{"registry down", down, w.Topic, []string{"KAFKA_SCHEMA_REGISTRY_URL", ln.Addr().String()}},
		{"schema refused", reg, refusing, []string{"KAFKA_SCHEMA_REGISTRY_URL", "Incompatible", refusing + "-value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.defender.CallsOf(schema.ExportInfoGathering)
			res := w.run(map[string]string{"KAFKA_TOPIC": tc.topic, "KAFKA_VALUE_FORMAT": "avro", "KAFKA_SCHEMA_REGISTRY_URL": tc.url})
			if res.Code != 1 {
				t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 20))
			}
			for _, s := range tc.wants {
				if !strings.Contains(res.Stderr, s) {
					t.Errorf("stderr does not name %q:\n%s", s, tail(res.Stderr, 20))
				}
			}
			if n := w.defender.CallsOf(schema.ExportInfoGathering); n != before {
				t.Errorf("%d export API calls, want none", n-before)
			}
			if msgs, _ := w.read(tc.topic); len(msgs) != 0 {
				t.Errorf("%d messages published, want none", len(msgs))
			}
		})
	}
}
