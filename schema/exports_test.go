package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExportsDeclaration(t *testing.T) {
	want := map[string]string{ // the nine exports of "Every export via files" and their topics
		"InfoGatheringExport":                  "mde.infogathering",
		"SoftwareVulnerabilitiesExport":        "mde.vulnerabilities",
		"SoftwareInventoryExport":              "mde.software",
		"SoftwareInventoryNonCpeExport":        "mde.software.noncpe",
		"SecureConfigurationsAssessmentExport": "mde.secureconfig",
		"BaselineComplianceAssessmentExport":   "mde.baseline",
		"CertificateAssessmentExport":          "mde.certificates",
		"HardwareFirmwareInventoryExport":      "mde.firmware",
		"BrowserExtensionsInventoryExport":     "mde.browserextensions",
	}
	all := Exports()
	if len(all) != len(want) || all[0].Name != ExportInfoGathering {
		t.Fatalf("%d exports, first %q", len(all), all[0].Name)
	}
	for _, e := range all {
		if want[e.Name] != e.Topic() {
			t.Errorf("%s: topic %q, want %q", e.Name, e.Topic(), want[e.Name])
		}
		if e.Key[0] != "DeviceId" || e.ManyPerDevice() != (e.Name != ExportInfoGathering) {
			t.Errorf("%s: key %q", e.Name, e.Key)
		}
		if e.Permission == "" || e.Folder == "" || e.Record == "" {
			t.Errorf("%s: incomplete declaration", e.Name)
		}
		seen := map[string]bool{}
		for _, c := range e.Columns {
			if seen[strings.ToLower(c.Name)] {
				t.Errorf("%s: column %s declared twice", e.Name, c.Name)
			}
			seen[strings.ToLower(c.Name)] = true
		}
		for _, k := range e.Key {
			if c, ok := e.Column(k); !ok || c.Name != k {
				t.Errorf("%s: key column %s is not a declared column", e.Name, k)
			}
		}
		got, ok := LookupExport(strings.ToLower(e.Name))
		if !ok || got.Name != e.Name {
			t.Errorf("LookupExport(%q) = %q, %v", strings.ToLower(e.Name), got.Name, ok)
		}
	}
	if _, ok := LookupExport("MachinesExport"); ok {
		t.Error("an unknown export was found")
	}
	// Copies: a caller cannot change the declaration.
	all[1].Key[1] = "changed"
	if e, _ := LookupExport(all[1].Name); e.Key[1] == "changed" {
		t.Error("Exports hands out the declaration itself")
	}
}

var vulnKey = []string{"DeviceId", "SoftwareVendor", "SoftwareName", "SoftwareVersion", "CveId"}

func TestNaturalKey(t *testing.T) {
	tests := []struct {
		name, line, id, key string
		err                 error
	}{
		{"all columns", `{"DeviceId":"d1","CveId":"CVE-2024-1","SoftwareVendor":"microsoft","SoftwareName":"edge","SoftwareVersion":"1.2","CvssScore":7.5}`,
			"d1", `{"DeviceId":"d1","SoftwareVendor":"microsoft","SoftwareName":"edge","SoftwareVersion":"1.2","CveId":"CVE-2024-1"}`, nil},
		{"null CveId", `{"DeviceId":"d1","SoftwareVendor":"v","SoftwareName":"n","SoftwareVersion":"1","CveId":null}`,
			"d1", `{"DeviceId":"d1","SoftwareVendor":"v","SoftwareName":"n","SoftwareVersion":"1","CveId":null}`, nil},
		{"missing columns are null", `{"DeviceId":"d1"}`,
			"d1", `{"DeviceId":"d1","SoftwareVendor":null,"SoftwareName":null,"SoftwareVersion":null,"CveId":null}`, nil},
		{"other casing, table's spelling", `{"deviceId":"d1","softwarevendor":"v","SOFTWARENAME":"n","SoftwareVersion":"1","CVEID":"c"}`,
			"d1", `{"DeviceId":"d1","SoftwareVendor":"v","SoftwareName":"n","SoftwareVersion":"1","CveId":"c"}`, nil},
		{"object and array compacted", `{"DeviceId":"d1","SoftwareVendor":{ "a" : [1, 2] },"SoftwareName":[ "x y" ],"SoftwareVersion":1.50,"CveId":true}`,
			"d1", `{"DeviceId":"d1","SoftwareVendor":{"a":[1,2]},"SoftwareName":["x y"],"SoftwareVersion":1.50,"CveId":true}`, nil},
		{"escapes normalised", `{"DeviceId":"d\u0031","SoftwareVendor":"a\/b\u00e9","SoftwareName":"q\"\\","SoftwareVersion":"\u0001","CveId":"c"}`,
			"d1", `{"DeviceId":"d1","SoftwareVendor":"a/bé","SoftwareName":"q\"\\","SoftwareVersion":"\u0001","CveId":"c"}`, nil},
		{"nested members ignored", `{"x":{"CveId":"inner"},"DeviceId":"d1","CveId":"outer"}`,
			"d1", `{"DeviceId":"d1","SoftwareVendor":null,"SoftwareName":null,"SoftwareVersion":null,"CveId":"outer"}`, nil},
		{"no DeviceId", `{"SoftwareVendor":"v","CveId":"c"}`, "", "", ErrNoDeviceID},
		{"not an object", `["d1"]`, "", "", ErrNotObject},
	}
	k := NewKeys(vulnKey)
	for _, tc := range tests {
		id, key, err := k.Read([]byte(tc.line))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || string(id) != tc.id || string(key) != tc.key {
			t.Errorf("%s:\n got %q %s %v\nwant %q %s", tc.name, id, key, err, tc.id, tc.key)
		}
	}
	// One column: the natural key is the DeviceId itself.
	id, key, err := NewKeys([]string{"DeviceId"}).Read([]byte(`{"DeviceId":"a\u0062"}`))
	if err != nil || string(id) != "ab" || string(key) != "ab" {
		t.Fatalf("one column: %q %q %v", id, key, err)
	}
}

func TestNaturalKeyEscapedIDSurvivesKey(t *testing.T) {
	// The unescaped DeviceId and the key share the reader's buffer.
	k := NewKeys(vulnKey)
	long := strings.Repeat("v", 4000)
	id, key, err := k.Read([]byte(`{"DeviceId":"\u0064\u0031","SoftwareVendor":"` + long + `"}`))
	if err != nil || string(id) != "d1" || !strings.Contains(string(key), long) {
		t.Fatalf("%q %v", id, err)
	}
}

// referenceKey is the natural key's contract with encoding/json: per
// column the last top-level member whose name equals it ignoring ASCII
// case, its value decoded (nil when missing).
func referenceKey(line []byte, cols []string) (string, []any, error) {
	id, err := referenceDeviceID(line)
	if err != nil {
		return "", nil, err
	}
	vals := make([]any, len(cols))
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return "", nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", nil, err
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", nil, err
		}
		for c, col := range cols {
			if asciiEqualFold(tok.(string), col) {
				vals[c] = v
			}
		}
	}
	return id, vals, nil
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// decodeKey decodes a natural key encoding, checking that it is compact
// and names the columns in order.
func decodeKey(t *testing.T, key []byte, cols []string) []any {
	t.Helper()
	var c bytes.Buffer
	if err := json.Compact(&c, key); err != nil || !bytes.Equal(c.Bytes(), key) {
		t.Fatalf("key %q is not compact JSON (%v)", key, err)
	}
	dec := json.NewDecoder(bytes.NewReader(key))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var vals []any
	for i := 0; dec.More(); i++ {
		tok, err := dec.Token()
		if err != nil || i >= len(cols) || tok != cols[i] {
			t.Fatalf("key %q: member %d is %v (%v)", key, i, tok, err)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	return vals
}

func FuzzNaturalKey(f *testing.F) {
	f.Add([]byte(`{"DeviceId":"d","SoftwareVendor":"v","cveid":null,"SoftwareName":{"a" : [1]}}`))
	f.Add([]byte(`{"deviceid":"d\u0022","SoftwareVersion":-1.5e3}`))
	cols := vulnKey
	f.Fuzz(func(t *testing.T, line []byte) {
		id, key, err := NewKeys(cols).Read(line)
		if !utf8.Valid(line) {
			if err == nil {
				t.Fatalf("invalid UTF-8 accepted")
			}
			return
		}
		wid, wvals, werr := referenceKey(line, cols)
		if werr != nil {
			if err == nil {
				t.Fatalf("accepted %q; encoding/json says %v", line, werr)
			}
			return
		}
		if err != nil || string(id) != wid {
			t.Fatalf("got %q %v; encoding/json says %q", id, err, wid)
		}
		if got := decodeKey(t, key, cols); !reflect.DeepEqual(got, wvals) {
			t.Fatalf("key %s decodes to %#v; encoding/json says %#v", key, got, wvals)
		}
	})
}

func BenchmarkNaturalKey(b *testing.B) {
	line := []byte(`{"Id":"x","DeviceId":"3f2b8c9d0e1a4b5c6d7e8f90a1b2c3d4e5f60718","DeviceName":"wks-0042.corp.contoso.com","OSPlatform":"Windows11","SoftwareVendor":"microsoft","SoftwareName":"edge_chromium-based","SoftwareVersion":"131.0.2903.70","CveId":"CVE-2024-12053","CvssScore":8.8,"VulnerabilitySeverityLevel":"High","DiskPaths":["C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"]}`)
	k := NewKeys(vulnKey)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := k.Read(line); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCloudEventsAttributes(t *testing.T) {
	if got := CloudEventsSource("", "InfoGatheringExport"); got != "tvm2kafka/default/InfoGatheringExport" {
		t.Errorf("source %q", got)
	}
	if got := CloudEventsSource("contoso", "SoftwareInventoryExport"); got != "tvm2kafka/contoso/SoftwareInventoryExport" {
		t.Errorf("source %q", got)
	}
	if got := CloudEventsType("SoftwareVulnerabilitiesExport", string(MarkerEnd)); got != "com.microsoft.defender.vm.SoftwareVulnerabilitiesExport.snapshot-end" {
		t.Errorf("type %q", got)
	}
	for in, want := range map[string]string{
		"2026-11-27T10:01:00Z":         "2026-11-27T10:01:00Z",
		"2026-11-27T11:01:00+01:00":    "2026-11-27T10:01:00Z",
		"2026-11-27T10:01:00.1234567Z": "2026-11-27T10:01:00.1234567Z",
		"2026-11-27 10:01:00":          "2026-11-27T10:01:00Z",
		"not a time":                   "not a time",
	} {
		if got := CloudEventsTime(in); got != want {
			t.Errorf("CloudEventsTime(%q) = %q, want %q", in, got, want)
		}
	}
}
