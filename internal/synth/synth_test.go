package synth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	hex40     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	spaceTime = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)
	partName  = regexp.MustCompile(`^\d{4}-\d\d-\d\d/1001/InfoGatheringExport/json/OrgId=[0-9a-f-]{36}/_RbacGroupId=\d+/part-\d{5}-[0-9a-f-]{36}\.c000\.json\.gz$`)
)

// partLines writes part p and returns its decompressed lines.
func partLines(t testing.TB, opts Options, p PartSpec) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := WritePart(&buf, opts, p)
	if err != nil {
		t.Fatalf("WritePart: %v", err)
	}
	if n != p.Devices {
		t.Fatalf("WritePart wrote %d lines, part has %d devices", n, p.Devices)
	}
	return gunzipLines(t, buf.Bytes())
}

func gunzipLines(t testing.TB, gz []byte) [][]byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		t.Fatalf("part does not end with a newline")
	}
	var lines [][]byte
	for _, l := range bytes.Split(raw, []byte("\n")) {
		if len(l) > 0 {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestRecordsAreRealistic(t *testing.T) {
	opts := Options{Devices: 5000, Parts: 3, Seed: 42}
	layout := Plan(opts)
	seen := make(map[string]bool)
	var totalBytes, extras int
	platforms := make(map[string]int)
	avModes := make(map[string]bool)
	for _, p := range layout.Parts {
		lines := partLines(t, opts, p)
		for k, line := range lines {
			i := p.First + k
			if want := Record(opts, i); !bytes.Equal(line, want) {
				t.Fatalf("device %d: part line differs from Record()", i)
			}
			totalBytes += len(line)
			var rec map[string]any
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatalf("device %d: invalid JSON: %v\n%s", i, err, line)
			}
			id, _ := rec["DeviceId"].(string)
			if !hex40.MatchString(id) {
				t.Fatalf("device %d: DeviceId %q is not 40 lowercase hex", i, id)
			}
			if id != DeviceID(opts, i) {
				t.Fatalf("device %d: DeviceId %s, DeviceID() says %s", i, id, DeviceID(opts, i))
			}
			if seen[id] {
				t.Fatalf("device %d: duplicate DeviceId %s", i, id)
			}
			seen[id] = true
			if name, _ := rec["DeviceName"].(string); strings.Count(name, ".") < 2 {
				t.Fatalf("device %d: DeviceName %q is not an FQDN", i, name)
			}
			platforms[rec["OsPlatform"].(string)]++
			if v, _ := rec["OsVersion"].(string); v == "" {
				t.Fatalf("device %d: no OsVersion", i)
			}
			for _, f := range []string{"LastSeenTime", "Timestamp"} {
				if v, _ := rec[f].(string); !spaceTime.MatchString(v) {
					t.Fatalf("device %d: %s = %q, want yyyy-MM-dd HH:mm:ss", i, f, v)
				}
			}
			if g, ok := rec["RbacGroupId"].(float64); !ok || int(g) != p.RbacGroupID {
				t.Fatalf("device %d: RbacGroupId %v, part's group %d", i, rec["RbacGroupId"], p.RbacGroupID)
			}
			if v, _ := rec["RbacGroupName"].(string); v == "" {
				t.Fatalf("device %d: no RbacGroupName", i)
			}
			dgi, ok := rec["DeviceGatheredInfo"].(string)
			if !ok {
				t.Fatalf("device %d: DeviceGatheredInfo is %T, want a string", i, rec["DeviceGatheredInfo"])
			}
			var info map[string]any
			if err := json.Unmarshal([]byte(dgi), &info); err != nil {
				t.Fatalf("device %d: DeviceGatheredInfo does not parse as JSON: %v", i, err)
			}
			mode, _ := info["AvMode"].(string)
			if len(mode) != 1 || mode < "0" || mode > "5" {
				t.Fatalf("device %d: AvMode %q", i, mode)
			}
			avModes[mode] = true
			for _, f := range []string{"AvIsSignatureUptoDate", "AvIsEngineUptodate", "AvIsPlatformUptodate"} {
				switch info[f] {
				case "True", "False", "Unknown":
				default:
					t.Fatalf("device %d: %s = %v", i, f, info[f])
				}
			}
			for _, f := range []string{"AvEngineVersion", "AvSignatureVersion", "AvPlatformVersion",
				"AvEngineUpdateTime", "AvSignatureUpdateTime", "AvPlatformUpdateTime", "CloudProtectionState",
				"Log4j_CVE_2021_44228", "Log4JEnvironmentVariableMitigation", "EBPFStatus", "TlsClient10", "TlsServer10"} {
				if v, _ := info[f].(string); v == "" {
					t.Fatalf("device %d: DeviceGatheredInfo.%s missing", i, f)
				}
			}
			scanStr, ok := info["AvScanResults"].(string)
			if !ok {
				t.Fatalf("device %d: AvScanResults is %T, want a string", i, info["AvScanResults"])
			}
			var scans map[string]map[string]any
			if err := json.Unmarshal([]byte(scanStr), &scans); err != nil {
				t.Fatalf("device %d: AvScanResults does not parse: %v", i, err)
			}
			if scans["Quick"]["ScanStatus"] == nil || scans["Full"]["ScanStatus"] == nil {
				t.Fatalf("device %d: AvScanResults lacks Quick/Full: %s", i, scanStr)
			}
			if len(rec) > 9 {
				extras++
			}
		}
	}
	if len(seen) != opts.Devices {
		t.Fatalf("%d unique devices across parts, want %d", len(seen), opts.Devices)
	}
	avg := totalBytes / opts.Devices
	if avg < 700 || avg > 1400 {
		t.Errorf("average line %d bytes, want 700–1400", avg)
	}
	// about 1 in 50: 100 expected
	if extras < 50 || extras > 170 {
		t.Errorf("%d of %d devices have an extra column, want about 1 in 50", extras, opts.Devices)
	}
	for _, p := range []string{"Windows11", "Windows10", "WindowsServer2022", "WindowsServer2019", "Linux", "macOS"} {
		if platforms[p] == 0 {
			t.Errorf("no %s device in %d", p, opts.Devices)
		}
	}
	if len(avModes) != 6 {
		t.Errorf("AvMode values seen: %v, want all of 0–5", avModes)
	}
	t.Logf("average line %d bytes, %d extra columns, platforms %v", avg, extras, platforms)
}

func TestDeterministic(t *testing.T) {
	opts := Options{Devices: 300, Parts: 2, Seed: 7}
	a, b := Plan(opts), Plan(opts)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("Plan not deterministic")
	}
	for _, p := range a.Parts {
		var x, y bytes.Buffer
		if _, err := WritePart(&x, opts, p); err != nil {
			t.Fatal(err)
		}
		if _, err := WritePart(&y, opts, p); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x.Bytes(), y.Bytes()) {
			t.Fatalf("part %s differs between two writes", p.Name)
		}
	}
	other := opts
	other.Seed = 8
	if DeviceID(opts, 0) == DeviceID(other, 0) {
		t.Fatalf("seed does not change DeviceId")
	}
	if bytes.Equal(Record(opts, 5), Record(other, 5)) {
		t.Fatalf("seed does not change records")
	}
	if Plan(other).Container == a.Container {
		t.Fatalf("seed does not change the container")
	}
	later := opts
	later.GeneratedTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := Plan(later).GeneratedTime; got != "2025-01-02T03:04:05Z" {
		t.Fatalf("GeneratedTime %q", got)
	}
	if !strings.HasPrefix(Plan(later).Parts[0].Name, "2025-01-02/") {
		t.Fatalf("part name %q does not start with the generated date", Plan(later).Parts[0].Name)
	}
	if a.GeneratedTime != "2026-11-27T10:01:00Z" {
		t.Fatalf("default GeneratedTime %q", a.GeneratedTime)
	}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct{ devices, parts, wantParts int }{
		{100000, 8, 8}, {10, 4, 4}, {3, 5, 5}, {0, 2, 2}, {50, 0, 1}, {-1, 1, 1},
	} {
		opts := Options{Devices: tc.devices, Parts: tc.parts, Seed: 3}
		l := Plan(opts)
		if len(l.Parts) != tc.wantParts {
			t.Fatalf("%+v: %d parts, want %d", tc, len(l.Parts), tc.wantParts)
		}
		next := 0
		sizes := make(map[int]bool)
		for k, p := range l.Parts {
			if !partName.MatchString(p.Name) {
				t.Fatalf("%+v: part name %q", tc, p.Name)
			}
			if !strings.Contains(p.Name, fmt.Sprintf("/_RbacGroupId=%d/", p.RbacGroupID)) {
				t.Fatalf("part name %q does not carry its group %d", p.Name, p.RbacGroupID)
			}
			if k > 0 && l.Parts[k-1].Name >= p.Name {
				t.Fatalf("%+v: parts not sorted by name", tc)
			}
			if p.First != next || p.Devices < 0 {
				t.Fatalf("%+v: part %d First=%d Devices=%d, want First=%d", tc, k, p.First, p.Devices, next)
			}
			next += p.Devices
			sizes[p.Devices] = true
		}
		want := max(tc.devices, 0)
		if next != want {
			t.Fatalf("%+v: parts hold %d devices, want %d", tc, next, want)
		}
		if tc.devices >= 1000 && len(sizes) < 2 {
			t.Fatalf("%+v: parts are all the same size; want an uneven split", tc)
		}
	}
}

// TestStreaming proves WritePart's memory does not grow with the part:
// twenty times the devices, about the same number of allocations.
func TestStreaming(t *testing.T) {
	opts := Options{Devices: 10000, Parts: 1, Seed: 1}
	p := Plan(opts).Parts[0]
	small := p
	small.Devices = 500
	allocs := func(p PartSpec) float64 {
		return testing.AllocsPerRun(1, func() {
			if _, err := WritePart(io.Discard, opts, p); err != nil {
				t.Fatal(err)
			}
		})
	}
	a, b := allocs(small), allocs(p)
	if b > a+16 {
		t.Fatalf("WritePart allocations grow with the part: %v for %d devices, %v for %d", a, small.Devices, b, p.Devices)
	}
}

func TestAppendJSONString(t *testing.T) {
	in := "a\"b\\c\n\t\r\x01\x1f Zürich"
	got := appendJSONString(nil, []byte(in))
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if back != in {
		t.Fatalf("round trip %q, want %q", back, in)
	}
}

// TestGolden compares the committed sample part with the generator's
// output; run `go test ./internal/synth -run TestGolden -update` after a
// deliberate change to the generator. The decompressed lines are compared,
// so a change in the gzip library's encoder alone does not fail it.
func TestGolden(t *testing.T) {
	opts := Options{Devices: 20, Parts: 1, Seed: 1}
	p := Plan(opts).Parts[0]
	path := filepath.Join("testdata", "sample-part-00000.json.gz")
	if *update {
		var buf bytes.Buffer
		if _, err := WritePart(&buf, opts, p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	want := gunzipLines(t, golden)
	got := partLines(t, opts, p)
	if len(got) != len(want) {
		t.Fatalf("generator wrote %d lines, golden has %d; run with -update if the change is deliberate", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("line %d differs from golden file; run with -update if the change is deliberate\n got: %s\nwant: %s", i+1, got[i], want[i])
		}
	}
	// The golden file is a plain multi-line gzip JSON file any tool reads.
	sc := bufio.NewScanner(bytes.NewReader(bytes.Join(want, []byte("\n"))))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("golden line is not JSON: %s", sc.Bytes())
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	g := newGen(Options{Devices: b.N, Seed: 1})
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = g.appendRecord(buf[:0], i, 7)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkWritePart(b *testing.B) {
	opts := Options{Devices: 10000, Parts: 1, Seed: 1}
	p := Plan(opts).Parts[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := WritePart(io.Discard, opts, p); err != nil {
			b.Fatal(err)
		}
	}
}

func TestChangeEveryChangesOnlyThoseDevices(t *testing.T) {
	base := Options{Devices: 500, Parts: 3, Seed: 9}
	later := base
	later.ChangeEvery = 100
	for i := range base.Devices {
		a, b := Record(base, i), Record(later, i)
		changed := i%100 == 0
		if changed == bytes.Equal(a, b) {
			t.Fatalf("device %d: changed %v, records equal %v", i, changed, bytes.Equal(a, b))
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || m["DeviceId"] != DeviceID(base, i) {
			t.Fatalf("device %d: %v %v", i, err, m["DeviceId"])
		}
	}
}
