//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/testrig"
	"github.com/tvm2kafka/tvm2kafka/internal/verify"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// binPath is the tvm2kafka binary built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tvm2kafka-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "tvm2kafka")
	build := exec.Command("go", "build", "-race", "-o", binPath, "github.com/tvm2kafka/tvm2kafka/cmd/tvm2kafka")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tvm2kafka:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Credentials of the fake Entra ID app.
const (
	tenantID     = "7d8bd2a1-0c6f-4d8e-9d1c-1b2a3c4d5e6f"
	clientID     = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	clientSecret = "e2e-client-secret-Qw8~pL2"
)

// world is everything one end-to-end test runs against: the real Kafka
// and Azurite of the rig, the fake Entra ID and Defender API over TLS
// reached through an HTTPS_PROXY under their public host names, and a
// fault-injecting proxy in front of Azurite.
type world struct {
	t      *testing.T
	rig    testrig.Rig
	opts   synth.Options
	layout synth.Layout
	blobs  map[string][]byte // blob name → gzip content

	entra    *fakes.Entra
	defender *fakes.Defender
	blobProx *fakes.BlobProxy
	connect  *fakes.ConnectProxy
	caFile   string

	container string
	Topic     string

	mu      sync.Mutex
	others  map[string]*world // other exports the Defender fake answers (addExport)
	denied  map[string]int    // export → status the Defender fake answers instead (403, 404)
	urls    []string          // SAS URLs (through blobProx) the Defender fake answers
	gen     string            // generatedTime the Defender fake answers
	allSigs []string          // every SAS signature handed out, to check logs
}

// newWorld uploads a synthetic export of devices in parts to Azurite and
// starts the fakes. The topic name is fresh and not created.
func newWorld(t *testing.T, devices, parts int) *world {
	t.Helper()
	return newWorldFor(t, schema.ExportInfoGathering, devices, parts)
}

// newWorldFor is newWorld for one export of schema.Exports; devices
// counts its records.
func newWorldFor(t *testing.T, export string, devices, parts int) *world {
	t.Helper()
	rig := testrig.Env(t)
	if rig.AzuriteBlob == "" {
		t.Skip("IT_AZURITE_BLOB is not set")
	}
	w := &world{t: t, rig: rig, opts: synth.Options{Export: export, Devices: devices, Parts: parts, Seed: rand.Int64()},
		others: map[string]*world{}, denied: map[string]int{}}
	w.layout = synth.Plan(w.opts)
	w.gen = w.layout.GeneratedTime
	w.blobs = map[string][]byte{}
	for _, p := range w.layout.Parts {
		var buf bytes.Buffer
		if _, err := synth.WritePart(&buf, w.opts, p); err != nil {
			t.Fatal(err)
		}
		w.blobs[p.Name] = buf.Bytes()
	}
	w.container = strings.ToLower(testrig.UniqueName(t, "export"))
	w.blobProx = fakes.NewBlobProxy(rig.AzuriteBlob)
	t.Cleanup(w.blobProx.Close)
	w.putBlobs(w.blobs)

	w.entra = fakes.NewEntra(tenantID, clientID, clientSecret)
	t.Cleanup(w.entra.Close)
	w.defender = fakes.NewDefender(fakes.DefenderConfig{
		TLS: true,
		ManifestOf: func(export string) ([]string, string, int) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if st := w.denied[export]; st != 0 {
				return nil, "", st
			}
			if o := w.others[export]; o != nil {
				o.mu.Lock()
				defer o.mu.Unlock()
				return append([]string(nil), o.urls...), o.gen, 0
			}
			if own := w.opts.Export; export != own && (own != "" || export != schema.ExportInfoGathering) {
				return nil, "", http.StatusNotFound
			}
			return append([]string(nil), w.urls...), w.gen, 0
		},
		Authorize: w.entra.ValidToken,
	})
	t.Cleanup(w.defender.Close)
	w.connect = fakes.NewConnectProxy(map[string]string{
		"login.microsoftonline.com":        hostOf(t, w.entra.URL()),
		"api.securitycenter.microsoft.com": hostOf(t, w.defender.URL()),
	})
	t.Cleanup(w.connect.Close)
	w.caFile = filepath.Join(t.TempDir(), "fakes-ca.pem")
	if err := os.WriteFile(w.caFile, append(w.entra.CertPEM(), w.defender.CertPEM()...), 0o600); err != nil {
		t.Fatal(err)
	}
	w.Topic = testrig.UniqueName(t, "mde")
	return w
}

// addExport makes the world's Defender fake answer other's export too.
func (w *world) addExport(other *world) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.others[other.opts.Export] = other
}

// deny makes the world's Defender fake answer status (403, 404) for export.
func (w *world) deny(export string, status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.denied[export] = status
}

// putBlobs uploads blobs to the world's container and makes the Defender
// fake answer fresh SAS URLs (through the fault proxy) for every blob.
func (w *world) putBlobs(blobs map[string][]byte) {
	w.t.Helper()
	sas := w.rig.UploadBlobs(w.t, w.container, blobs)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.urls = w.urls[:0]
	for name := range w.blobs {
		u := sas[name]
		if u == "" {
			var err error
			if u, err = w.rig.BlobSASURL(w.container, name, testrig.SASOptions{}); err != nil {
				w.t.Fatal(err)
			}
		}
		w.allSigs = append(w.allSigs, sigOf(u))
		w.urls = append(w.urls, w.blobProx.Rewrite(u))
	}
}

// remintSAS makes the Defender fake answer new SAS URLs (new signatures)
// for the same blobs, as Defender does when the export is fetched again.
func (w *world) remintSAS(lifetime time.Duration) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.urls = w.urls[:0]
	for name := range w.blobs {
		u, err := w.rig.BlobSASURL(w.container, name, testrig.SASOptions{Expiry: lifetime})
		if err != nil {
			w.t.Fatal(err)
		}
		w.allSigs = append(w.allSigs, sigOf(u))
		w.urls = append(w.urls, w.blobProx.Rewrite(u))
	}
}

func sigOf(sasURL string) string {
	u, err := url.Parse(sasURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("sig")
}

func hostOf(t *testing.T, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// env is the environment of a tvm2kafka run against this world: default
// public URLs (reached through HTTPS_PROXY), client-secret credentials.
func (w *world) env(extra map[string]string) []string {
	m := map[string]string{
		"PATH":                os.Getenv("PATH"),
		"HOME":                os.Getenv("HOME"),
		"AZURE_TENANT_ID":     tenantID,
		"AZURE_CLIENT_ID":     clientID,
		"AZURE_CLIENT_SECRET": clientSecret,
		"HTTPS_PROXY":         w.connect.URL(),
		"NO_PROXY":            "127.0.0.1,localhost",
		"SSL_CERT_FILE":       w.caFile,
		"KAFKA_BROKERS":       w.rig.BrokerList(),
		"KAFKA_TOPIC":         w.Topic,
		"LOG_LEVEL":           "debug",
		"GORACE":              "halt_on_error=1",
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// result is one finished tvm2kafka process.
type result struct {
	Code           int
	Stdout, Stderr string
	Elapsed        time.Duration
}

// run runs `tvm2kafka run args...` to completion.
func (w *world) run(extra map[string]string, args ...string) result {
	w.t.Helper()
	return w.runArgs(extra, append([]string{"run"}, args...)...)
}

// assertNoSecrets fails the test if out holds the client secret, a SAS
// signature, or a bearer token the fake Entra ID issued.
func (w *world) assertNoSecrets(out string) {
	w.t.Helper()
	w.mu.Lock()
	sigs := append([]string(nil), w.allSigs...)
	w.mu.Unlock()
	for _, s := range append(sigs, clientSecret) {
		if s != "" && strings.Contains(out, s) {
			w.t.Errorf("output holds a secret (%.6s…)", s)
		}
	}
	if strings.Contains(out, "sig=") && !strings.Contains(out, "sig=[REDACTED]") {
		w.t.Errorf("output holds a SAS signature parameter")
	}
	for _, field := range strings.FieldsFunc(out, func(r rune) bool {
		return r == '"' || r == ' ' || r == '\n' || r == '=' || r == ','
	}) {
		if len(field) > 20 && w.entra.ValidToken(field) {
			w.t.Errorf("output holds a bearer token")
		}
	}
}

// read reads the world's topic back and verifies it.
func (w *world) read(topic string) ([]verify.Message, *verify.Report) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, n, err := verify.ReadTopic(ctx, w.rig.Brokers, topic)
	if err != nil {
		w.t.Fatal(err)
	}
	return msgs, verify.Check(msgs, n)
}

// expected is where a device's record must come from.
type expected struct {
	line []byte
	part string // mde.part
	num  string // mde.line
}

// expectedRecords maps every DeviceId of the synthetic export to its line
// and position: mde.part counts parts sorted by blob path.
func (w *world) expectedRecords() map[string]expected {
	index := map[string]int{}
	for i, path := range schemaParts(w) {
		index[path] = i
	}
	out := make(map[string]expected, w.opts.Devices)
	for _, p := range w.layout.Parts {
		part := -1
		for path, i := range index {
			if unescaped, err := url.PathUnescape(path); err == nil && strings.HasSuffix(unescaped, "/"+p.Name) {
				part = i
			}
		}
		if part < 0 {
			w.t.Fatalf("part %s not in the manifest", p.Name)
		}
		for j := 0; j < p.Devices; j++ {
			i := p.First + j
			out[synth.DeviceID(w.opts, i)] = expected{synth.Record(w.opts, i), fmt.Sprint(part), fmt.Sprint(j + 1)}
		}
	}
	return out
}

// assertSnapshot checks the README's message format for one complete run: every
// device exactly once with its line byte for byte, its part and line
// number, key, partition and headers (verify.Check), markers first and
// last per partition, counts.
func (w *world) assertSnapshot(msgs []verify.Message, rep *verify.Report, runID string, rejected int64) *verify.Run {
	w.t.Helper()
	run := rep.Run(runID)
	if run == nil {
		w.t.Fatalf("run %s not in the topic", runID)
	}
	if !run.Complete {
		w.t.Fatalf("run %s incomplete: started %d ended %d aborted %d records %d/%d problems %v",
			runID, run.Started, run.Ended, run.Aborted, run.Records, run.EndRecords, run.Problems)
	}
	want := w.expectedRecords()
	if run.Records != int64(len(want)) || run.EndRejected != rejected {
		w.t.Fatalf("run has %d records (%d rejected), want %d (%d)", run.Records, run.EndRejected, len(want), rejected)
	}
	for _, m := range msgs {
		if m.Headers[schema.HeaderRunID] != runID || string(m.Key) == schema.MarkerKey {
			continue
		}
		exp, ok := want[string(m.Key)]
		if !ok {
			w.t.Fatalf("record with unknown or repeated key %q", m.Key)
		}
		if !bytes.Equal(exp.line, m.Value) {
			w.t.Fatalf("value of %s differs from its line", m.Key)
		}
		if m.Headers[schema.HeaderPart] != exp.part || m.Headers[schema.HeaderLine] != exp.num {
			w.t.Fatalf("record %s: mde.part %s mde.line %s, want %s and %s", m.Key,
				m.Headers[schema.HeaderPart], m.Headers[schema.HeaderLine], exp.part, exp.num)
		}
		delete(want, string(m.Key))
		if m.Headers[schema.HeaderExport] != schema.ExportInfoGathering || m.Headers[schema.HeaderGeneratedTime] != w.gen {
			w.t.Fatalf("record headers %v", m.Headers)
		}
	}
	if len(want) != 0 {
		w.t.Fatalf("%d devices missing from the topic", len(want))
	}
	assertBracketed(w.t, msgs, runID, rep.Partitions)
	return run
}

// assertBracketed fails unless, in every partition, the run's first
// message is its snapshot-start and its last its snapshot-end.
func assertBracketed(t *testing.T, msgs []verify.Message, runID string, partitions int) {
	t.Helper()
	first, last := map[int32]verify.Message{}, map[int32]verify.Message{}
	for _, m := range msgs {
		if m.Headers[schema.HeaderRunID] != runID {
			continue
		}
		if f, ok := first[m.Partition]; !ok || m.Offset < f.Offset {
			first[m.Partition] = m
		}
		if l, ok := last[m.Partition]; !ok || m.Offset > l.Offset {
			last[m.Partition] = m
		}
	}
	for p := int32(0); p < int32(partitions); p++ {
		if first[p].Headers[schema.HeaderMarker] != string(schema.MarkerStart) || last[p].Headers[schema.HeaderMarker] != string(schema.MarkerEnd) {
			t.Fatalf("partition %d: first %q last %q", p, first[p].Headers[schema.HeaderMarker], last[p].Headers[schema.HeaderMarker])
		}
	}
}

// summaryOf returns the fields of the "snapshot summary" log line.
func summaryOf(t *testing.T, stderr string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, `"snapshot summary"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("summary line is not JSON: %v\n%s", err, line)
		}
		return m
	}
	t.Fatalf("no summary line:\n%s", tail(stderr, 30))
	return nil
}

// schemaParts returns the blob paths of the world's parts in mde.part order.
func schemaParts(w *world) []string {
	w.mu.Lock()
	urls := append([]string(nil), w.urls...)
	w.mu.Unlock()
	m, err := schema.NewManifest(schema.ExportInfoGathering, w.gen, urls)
	if err != nil {
		w.t.Fatal(err)
	}
	out := make([]string, len(m.Parts))
	for i, p := range m.Parts {
		out[i] = p.Path
	}
	return out
}

// runID finds the run_id of the summary line of a run's JSON logs.
func runID(t *testing.T, stderr string) string {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, `"snapshot summary"`) {
			i := strings.Index(line, `"run_id":"`)
			if i >= 0 {
				rest := line[i+len(`"run_id":"`):]
				return rest[:strings.IndexByte(rest, '"')]
			}
		}
	}
	t.Fatalf("no run_id in the summary line:\n%s", tail(stderr, 30))
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// newWorldWithBlobs is newWorld with hand-made part files instead of a
// synthetic export: blobs maps blob names to their (usually gzip) content,
// served as they are. The world's synth layout is empty, so
// expectedRecords and assertSnapshot do not apply; the Defender fake
// answers one SAS URL per blob of blobs.
func newWorldWithBlobs(t *testing.T, blobs map[string][]byte) *world {
	t.Helper()
	w := newWorld(t, 0, 1)
	w.opts.Devices = 0
	w.layout.Parts = nil
	w.mu.Lock()
	w.blobs = blobs
	w.mu.Unlock()
	w.putBlobs(blobs)
	return w
}
