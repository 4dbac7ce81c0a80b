package synth

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// TestEveryExport: for every export, every line is a JSON object holding
// each documented column with its documented type (null allowed), the
// natural keys are unique in the snapshot, the DeviceId is DeviceID's,
// and the part paths have Defender's shape with the export's folder.
func TestEveryExport(t *testing.T) {
	for _, e := range schema.Exports() {
		t.Run(e.Name, func(t *testing.T) {
			opts := Options{Export: e.Name, Devices: 40 * RowsPerDevice(e.Name), Parts: 3, Seed: 7}
			shape := regexp.MustCompile(`^\d{4}-\d\d-\d\d/1001/` + regexp.QuoteMeta(e.Folder) + `/json/OrgId=[0-9a-f-]{36}/_RbacGroupId=\d+/part-\d{5}-[0-9a-f-]{36}\.c000\.json\.gz$`)
			keys := schema.NewKeys(e.Key)
			seen := map[string]bool{}
			nulls, n, size := 0, 0, 0
			for _, p := range Plan(opts).Parts {
				if !shape.MatchString(p.Name) {
					t.Fatalf("part path %q", p.Name)
				}
				if p.First%RowsPerDevice(e.Name) != 0 {
					t.Fatalf("part %s starts inside a device (record %d)", p.Name, p.First)
				}
				for j, line := range partLines(t, opts, p) {
					i := p.First + j
					n++
					size += len(line)
					var m map[string]any
					if err := json.Unmarshal(line, &m); err != nil {
						t.Fatalf("line %d: %v", i, err)
					}
					for _, c := range e.Columns {
						v, ok := m[c.Name]
						if !ok {
							if alt, found := foldLookup(m, c.Name); found {
								v, ok = alt, true
							}
						}
						if !ok {
							t.Fatalf("record %d has no %s: %s", i, c.Name, line)
						}
						if !typed(v, c.Type) {
							t.Fatalf("record %d: %s = %#v is not a %s", i, c.Name, v, c.Type)
						}
					}
					id, key, err := keys.Read(line)
					if err != nil || string(id) != DeviceID(opts, i) {
						t.Fatalf("record %d: DeviceId %q (%v), DeviceID says %s", i, id, err, DeviceID(opts, i))
					}
					if seen[string(key)] {
						t.Fatalf("record %d: natural key %s twice", i, key)
					}
					seen[string(key)] = true
					if v, ok := m["CveId"]; ok && v == nil {
						nulls++
					}
					if string(Record(opts, i)) != string(line) {
						t.Fatalf("Record(%d) differs from the part's line", i)
					}
				}
			}
			if n != opts.Devices {
				t.Fatalf("%d records, want %d", n, opts.Devices)
			}
			if e.Name == "SoftwareVulnerabilitiesExport" {
				if nulls != 40 {
					t.Errorf("%d rows with CveId null, want one per device", nulls)
				}
				if avg := size / n; avg < 700 || avg > 1400 {
					t.Errorf("average line %d bytes, want about 1 KB", avg)
				}
			}
		})
	}
}

func foldLookup(m map[string]any, name string) (any, bool) {
	for k, v := range m {
		if len(k) == len(name) && regexp.MustCompile(`(?i)^`+regexp.QuoteMeta(name)+`$`).MatchString(k) {
			return v, true
		}
	}
	return nil, false
}

// typed reports whether v, as encoding/json decoded it, is of type t or null.
func typed(v any, t schema.ColumnType) bool {
	if v == nil {
		return true
	}
	switch t {
	case schema.TypeInt:
		f, ok := v.(float64)
		return ok && f == float64(int64(f))
	case schema.TypeDouble:
		_, ok := v.(float64)
		return ok
	case schema.TypeBool:
		_, ok := v.(bool)
		return ok
	case schema.TypeTime:
		s, ok := v.(string)
		return ok && (spaceTime.MatchString(s) || regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(s))
	case schema.TypeStrings:
		a, ok := v.([]any)
		for _, x := range a {
			if _, isStr := x.(string); !isStr {
				return false
			}
		}
		return ok
	case schema.TypeJSONString:
		s, ok := v.(string)
		var x any
		return ok && json.Unmarshal([]byte(s), &x) == nil
	case schema.TypeObject:
		switch v.(type) {
		case map[string]any, []any:
			return true
		}
		return false
	}
	_, ok := v.(string)
	return ok
}
