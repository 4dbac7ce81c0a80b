package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
)

// TestGenerate checks the parts and their keyed twins: same lines, each
// keyed by its own DeviceId, and a layout.json that adds up.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	opts := synth.Options{Devices: 500, Parts: 3, Seed: 9}
	l, err := generate(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	back, err := readLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Records != 500 || back.Parts != 3 || back.Bytes != l.Bytes || back.Container != synth.Plan(opts).Container {
		t.Fatalf("layout.json %+v", back)
	}
	var total, devices int
	var bytesSum int64
	for k, pf := range back.Files {
		if pf.Blob != synth.Plan(opts).Parts[k].Name {
			t.Fatalf("part %d blob %q", k, pf.Blob)
		}
		plain := readGz(t, filepath.Join(dir, pf.File))
		keyed := readGz(t, filepath.Join(dir, pf.Keyed))
		pl := strings.SplitAfter(plain, "\n")
		kl := strings.SplitAfter(keyed, "\n")
		if len(pl) != len(kl) || len(pl)-1 != pf.Devices {
			t.Fatalf("part %d: %d lines, %d keyed lines, %d devices", k, len(pl)-1, len(kl)-1, pf.Devices)
		}
		for i := 0; i < pf.Devices; i++ {
			key, line, ok := strings.Cut(kl[i], "\t")
			if !ok || line != pl[i] {
				t.Fatalf("part %d line %d: keyed line is not key TAB line", k, i+1)
			}
			var rec struct{ DeviceId string }
			if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.DeviceId != key {
				t.Fatalf("part %d line %d: key %q, DeviceId %q (%v)", k, i+1, key, rec.DeviceId, err)
			}
			total++
		}
		devices += pf.Devices
		bytesSum += int64(len(plain))
		if pf.Bytes != int64(len(plain)) {
			t.Fatalf("part %d: layout says %d bytes, decompressed %d", k, pf.Bytes, len(plain))
		}
	}
	if total != 500 || devices != 500 || bytesSum != back.Bytes {
		t.Fatalf("%d lines, %d devices, %d bytes; layout %d bytes", total, devices, bytesSum, back.Bytes)
	}
	// A second `gen gen` with the same settings reuses the directory.
	var out bytes.Buffer
	if err := cmdGen(context.Background(), []string{"--records", "500", "--parts", "3", "--seed", "9", "--out", dir}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "reusing") {
		t.Fatalf("second gen: %q, want it to reuse the data", out.String())
	}
}

func readGz(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServeManifestCommand runs the real subcommand: it prints its URL,
// answers, and stops when its context ends.
func TestServeManifestCommand(t *testing.T) {
	dir := t.TempDir()
	if _, err := generate(context.Background(), dir, synth.Options{Devices: 10, Parts: 2, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	urls := "http://127.0.0.1:10000/devstoreaccount1/c/a.json.gz?sig=1\nhttp://127.0.0.1:10000/devstoreaccount1/c/b.json.gz?sig=2\n"
	if err := os.WriteFile(filepath.Join(dir, "urls.txt"), []byte(urls), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- cmdServeManifest(ctx, []string{"--dir", dir}, pw) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSpace(line)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("printed %q, want a loopback URL", base)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/machines/InfoGatheringExport", nil)
	req.Header.Set("Authorization", "Bearer bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ExportFiles   []string `json:"exportFiles"`
		GeneratedTime string   `json:"generatedTime"`
	}
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil || len(m.ExportFiles) != 2 || m.GeneratedTime != "2026-11-27T10:01:00Z" {
		t.Fatalf("manifest %+v, %v", m, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve-manifest returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve-manifest did not stop after its context ended")
	}
}

func TestReport(t *testing.T) {
	results := `# contender	round	wall_seconds	max_rss_kb
tvm2kafka	1	10.0	81920
kcat	1	11.0	40960
tvm2kafka	2	12.0	102400
kcat	2	10.0	40960
tvm2kafka	3	11.0	92160
kcat	3	12.0	40960
dry-run	1	5.0	51200
gunzip	1	4.0	0
`
	s, err := readResults(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	l := Layout{Records: 1100000, Parts: 8, Bytes: 1_100_000_000, GzipBytes: 120_000_000}
	if err := report(&out, l, s); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"tvm2kafka / kcat wall time (medians): 1.00",
		"peak RSS (max of rounds):   100 MB",
		"dry-run at 80% of gunzip's speed",
		"(10.00–12.00)",
		"100000", // 1.1M records / 11 s median
		"90",     // 100 MB median RSS... and 90 MB
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if _, err := readResults(strings.NewReader("kcat 1 abc 0\n")); err == nil {
		t.Errorf("bad results line accepted")
	}
}

// TestReportJava: the per-round ratio pairs tvm2kafka's and the Java
// producer's own records/s of the same round; the median is of the ratios.
func TestReportJava(t *testing.T) {
	results := `tvm2kafka	1	10.0	81920	200000
java	1	20.0	900000	250000
java	2	21.0	900000	100000
tvm2kafka	2	11.0	81920	150000
tvm2kafka	3	12.0	81920	240000
java	3	22.0	900000	200000
kcat	1	11.0	40960
gunzip	1	2.0	0
gunzip	2	2.5	0
gunzip	3	4.0	0
`
	s, err := readResults(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := report(&out, Layout{Records: 1000000, Parts: 8, Bytes: 1e9, GzipBytes: 1e8}, s); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	// ratios: 0.80, 1.50, 1.20 → median 1.20
	for _, want := range []string{
		"median of 3 per-round ratios: 1.20 (0.80–1.50)",
		"medians: Java producer 200000 records/s, tvm2kafka 200000 records/s",
		"machine speed: parallel gunzip 400 MB/s (median of 3 rounds", // 1 GB / 2.5 s
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	for _, line := range []string{"1  250000  200000  0.80", "2  100000  150000  1.50", "3  200000  240000  1.20"} {
		if !strings.Contains(strings.Join(strings.Fields(got), " "), strings.Join(strings.Fields(line), " ")) {
			t.Errorf("report lacks round %q:\n%s", line, got)
		}
	}

	if _, err := readResults(strings.NewReader("java 1 2.0 0 -5\n")); err == nil {
		t.Errorf("negative records/s accepted")
	}
	s, _ = readResults(strings.NewReader("java 1 2.0 0 1000\n"))
	if err := report(io.Discard, Layout{Records: 1}, s); err == nil {
		t.Errorf("a Java round without tvm2kafka's figure was not reported as an error")
	}
}

func TestDeviceID(t *testing.T) {
	opts := synth.Options{Devices: 3, Seed: 4}
	id, err := deviceID(synth.Record(opts, 2))
	if err != nil || string(id) != synth.DeviceID(opts, 2) {
		t.Fatalf("deviceID = %q, %v; want %s", id, err, synth.DeviceID(opts, 2))
	}
	if _, err := deviceID([]byte(`{"DeviceName":"x"}`)); err == nil {
		t.Fatalf("no error for a line without a leading DeviceId")
	}
}
