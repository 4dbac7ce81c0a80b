package producer

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// TestValueFormatJSON: with the json value format every record's value is
// its line normalised — for every export, undocumented members included:
// the same members, JSON held in strings unpacked, Defender's timestamps
// as RFC 3339 — while its key and mde.key are the raw line's.
func TestValueFormatJSON(t *testing.T) {
	for _, e := range schema.Exports() {
		c := newCluster(t, kfake.SeedTopics(2, "records"))
		k := newTestKafka(t, c, nil)
		m := newManifest(t, 1)
		m.Export = e.Name
		opts := synth.Options{Export: e.Name, Devices: 60 * synth.RowsPerDevice(e.Name), Seed: 3}
		var b strings.Builder
		lines := map[string]string{} // mde.line → raw line
		for i := range opts.Devices {
			l := string(synth.Record(opts, i))
			b.WriteString(l + "\n")
			lines[itoa(i+1)] = l
		}
		s, err := NewSnapshot(SnapshotConfig{RetryMaxElapsed: time.Minute, Manifest: m, Topic: "records", Partitions: 2, RunID: "r",
			MaxMessageBytes: 1 << 20, ValueFormat: ValueJSON}, newMemParts(map[int]string{0: b.String()}), k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		kr := schema.NewKeys(e.Key)
		n, undocumented := 0, 0
		for _, r := range readTopic(t, c.ListenAddrs(), "records") {
			if string(r.Key) == schema.MarkerKey {
				continue
			}
			n++
			ln, _ := recHeader(r, schema.HeaderLine)
			raw := lines[ln]
			var in, out map[string]any
			if json.Unmarshal([]byte(raw), &in) != nil || json.Unmarshal(r.Value, &out) != nil || len(in) != len(out) {
				t.Fatalf("%s line %s: %d members became %d: %s", e.Name, ln, len(in), len(out), r.Value)
			}
			for name, v := range in {
				if _, ok := e.Column(name); !ok {
					undocumented++
				}
				got, ok := out[name]
				if !ok {
					t.Fatalf("%s: member %s lost", e.Name, name)
				}
				sv, isString := v.(string)
				switch col, _ := e.Column(name); {
				case isString && col.Type == schema.TypeJSONString:
					var want any
					_ = json.Unmarshal([]byte(sv), &want)
					if _, still := got.(string); still || want == nil {
						t.Fatalf("%s: %s still a string: %v", e.Name, name, got)
					}
				case isString && col.Type == schema.TypeTime && strings.Contains(sv, " "):
					if _, err := time.Parse(time.RFC3339Nano, got.(string)); err != nil {
						t.Fatalf("%s: %s = %v is not RFC 3339", e.Name, name, got)
					}
				}
			}
			id, natural, err := kr.Read([]byte(raw))
			if key, _ := recHeader(r, schema.HeaderKey); err != nil || string(r.Key) != string(id) || key != string(natural) {
				t.Fatalf("%s: key %s / mde.key %s, the raw line's %s / %s", e.Name, r.Key, key, id, natural)
			}
		}
		if n != opts.Devices {
			t.Fatalf("%s: %d records", e.Name, n)
		}
		if e.Name == schema.ExportInfoGathering && undocumented == 0 {
			t.Fatalf("no undocumented member was tried")
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
