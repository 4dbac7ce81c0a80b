package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/producer"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

func tailOf(msgs ...wire.TailMessage) *wire.Tail {
	for i := range msgs {
		msgs[i].Partition = i
	}
	return &wire.Tail{Topic: "t", Partitions: msgs}
}

func tailMsg(kind schema.MarkerKind, run, gen string, at time.Time) wire.TailMessage {
	m := wire.TailMessage{Offset: 5, Time: at, Headers: map[string]string{
		schema.HeaderRunID: run, schema.HeaderExport: schema.ExportInfoGathering, schema.HeaderGeneratedTime: gen,
	}}
	if kind != "" {
		m.Key = []byte(schema.MarkerKey)
		m.Headers[schema.HeaderMarker] = string(kind)
	} else {
		m.Key = []byte("0123456789abcdef0123456789abcdef01234567")
	}
	return m
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const g1, g2 = "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"
	m := schema.Manifest{Export: schema.ExportInfoGathering, GeneratedTime: g2}
	lease := 15 * time.Minute
	end := func(gen string) wire.TailMessage {
		return tailMsg(schema.MarkerEnd, "old", gen, now.Add(-time.Hour))
	}
	cases := []struct {
		name               string
		tail               *wire.Tail
		force              bool
		publish, unchanged bool
		live               string
		dead               []string
	}{
		{"empty topic", tailOf(wire.TailMessage{Offset: -1}, wire.TailMessage{Offset: -1}), false, true, false, "", nil},
		{"same export", tailOf(end(g2), end(g2)), false, false, true, "", nil},
		{"same export forced", tailOf(end(g2), end(g2)), true, true, true, "", nil},
		{"older export", tailOf(end(g1), end(g1)), false, true, false, "", nil},
		{"one partition empty", tailOf(end(g2), wire.TailMessage{Offset: -1}), false, true, false, "", nil},
		{"after an abort", tailOf(tailMsg(schema.MarkerAbort, "x", g2, now), end(g2)), false, true, false, "", nil},
		{"live run", tailOf(end(g1), tailMsg(schema.MarkerStart, "busy", g2, now.Add(-time.Minute))), false, false, false, "busy", nil},
		{"live run forced", tailOf(end(g1), tailMsg("", "busy", g2, now.Add(-time.Minute))), true, true, false, "busy", nil},
		{"dead run", tailOf(end(g1), tailMsg("", "gone", g2, now.Add(-16*time.Minute))), false, true, false, "", []string{"gone"}},
		{"live beside dead", tailOf(tailMsg("", "gone", g2, now.Add(-time.Hour)), tailMsg(schema.MarkerStart, "busy", g2, now.Add(-14*time.Minute))), false, false, false, "busy", []string{"gone"}},
		{"clock ahead", tailOf(tailMsg("", "future", g2, now.Add(time.Minute))), false, false, false, "future", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := decide(c.tail, m, now, lease, c.force)
			live := ""
			if v.live != nil {
				live = v.live.RunID
			}
			var dead []string
			for _, d := range v.dead {
				dead = append(dead, d.RunID)
			}
			if v.publish != c.publish || v.unchanged != c.unchanged || live != c.live || !slices.Equal(dead, c.dead) {
				t.Fatalf("verdict publish %v unchanged %v live %q dead %v; want %v %v %q %v", v.publish, v.unchanged, live, dead, c.publish, c.unchanged, c.live, c.dead)
			}
		})
	}
}

func TestLeaseErrorNamesTheRun(t *testing.T) {
	err := &leaseError{run: wire.UnfinishedRun{RunID: "5b0e-run"}, topic: "mde.infogathering", age: 90 * time.Second, lease: 15 * time.Minute}
	for _, want := range []string{"5b0e-run", "mde.infogathering", "1m30s", "TVM2KAFKA_LEASE", "TVM2KAFKA_FORCE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err.Error(), want)
		}
	}
}

func TestAutoWorkers(t *testing.T) {
	const mi = 1 << 20
	const line = 1_000_000 // KAFKA_MAX_MESSAGE_BYTES default
	cases := []struct {
		r    resources
		line int
		want int
	}{
		{resources{procs: 4}, line, 4},                                                  // no limit: one per CPU
		{resources{procs: 0}, line, 1},                                                  // never below one
		{resources{procs: 64, cgroupMemory: 256 * mi}, line, 35},                        // the CronJob of deploy/: (0.8×256Mi−64Mi)/(3Mi+1MB)
		{resources{procs: 2, cgroupMemory: 256 * mi}, line, 2},                          // CPUs are the tighter bound
		{resources{procs: 64, cgroupMemory: 128 * mi}, line, 9},                         // a smaller container
		{resources{procs: 256, cgroupMemory: 1024 * mi}, line, 191},                     // (0.8×1Gi−64Mi)/(3Mi+1MB)
		{resources{procs: 256, cgroupMemory: 1024 * mi}, 64 * mi, 11},                   // 64 MiB lines need 67 MiB a worker
		{resources{procs: 64, cgroupMemory: 32 * mi}, line, 1},                          // tiny limit: still one
		{resources{procs: 128, goMemLimit: 512 * mi}, line, 87},                         // GOMEMLIMIT alone
		{resources{procs: 64, cgroupMemory: 4096 * mi, goMemLimit: 256 * mi}, line, 35}, // the lower of both
		{resources{procs: 1000}, line, 256},                                             // capped
	}
	for _, c := range cases {
		if got := autoWorkers(c.r, c.line); got != c.want {
			t.Errorf("autoWorkers(%+v, %d) = %d, want %d", c.r, c.line, got, c.want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	t.Run("v2 in its own namespace", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "cgroup.controllers"), "cpu memory")
		writeFile(t, filepath.Join(root, "memory.max"), "268435456\n")
		if got := cgroupMemoryLimit(root, []byte("0::/\n")); got != 256<<20 {
			t.Fatalf("got %d", got)
		}
	})
	t.Run("v2 nested, parent lower", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "cgroup.controllers"), "memory")
		writeFile(t, filepath.Join(root, "memory.max"), "max\n")
		writeFile(t, filepath.Join(root, "kubepods/pod1/memory.max"), "536870912\n")
		writeFile(t, filepath.Join(root, "kubepods/pod1/c1/memory.max"), "max\n")
		if got := cgroupMemoryLimit(root, []byte("0::/kubepods/pod1/c1\n")); got != 512<<20 {
			t.Fatalf("got %d", got)
		}
	})
	t.Run("v2 unlimited", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "cgroup.controllers"), "memory")
		writeFile(t, filepath.Join(root, "memory.max"), "max\n")
		if got := cgroupMemoryLimit(root, []byte("0::/\n")); got != 0 {
			t.Fatalf("got %d", got)
		}
	})
	t.Run("v1", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "memory/memory.limit_in_bytes"), "9223372036854771712\n")
		writeFile(t, filepath.Join(root, "memory/docker/abc/memory.limit_in_bytes"), "134217728\n")
		cg := "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n"
		if got := cgroupMemoryLimit(root, []byte(cg)); got != 128<<20 {
			t.Fatalf("got %d", got)
		}
	})
	t.Run("none", func(t *testing.T) {
		if got := cgroupMemoryLimit(t.TempDir(), []byte("garbage")); got != 0 {
			t.Fatalf("got %d", got)
		}
	})
}

func TestWorkersDefaultIsAutomatic(t *testing.T) {
	raw := defaultValues()
	raw["KAFKA_BROKERS"] = "127.0.0.1:9092"
	raw["MDE_ACCESS_TOKEN"] = "t0ken"
	cfg, err := parseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.workersAuto || cfg.workers != autoWorkers(cfg.res, cfg.kafka.MaxMessageBytes) || cfg.workers < 1 {
		t.Fatalf("workers %d auto %v for %+v", cfg.workers, cfg.workersAuto, cfg.res)
	}
	if cfg.effective["TVM2KAFKA_WORKERS"] == "" || cfg.effective["MDE_ACCESS_TOKEN"] != "[REDACTED]" {
		t.Fatalf("effective settings %v", cfg.effective)
	}
	if cfg.Runs.Lease != 15*time.Minute || cfg.Runs.Interval != time.Hour || cfg.Runs.HTTPAddr != ":8080" || cfg.Runs.Force {
		t.Fatalf("defaults: lease %v interval %v addr %q force %v", cfg.Runs.Lease, cfg.Runs.Interval, cfg.Runs.HTTPAddr, cfg.Runs.Force)
	}
}

func TestServeConfigErrorsExit2BeforeAnyNetworkCall(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer srv.Close()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	base := map[string]string{"MDE_API_URL": srv.URL, "MDE_ACCESS_TOKEN": "tok-abcdef", "KAFKA_BROKERS": strings.TrimPrefix(srv.URL, "http://")}
	for _, c := range []struct {
		cmd, env, value string
	}{
		{"serve", "TVM2KAFKA_INTERVAL", "0"},
		{"serve", "TVM2KAFKA_INTERVAL", "-1h"},
		{"serve", "TVM2KAFKA_INTERVAL", "1 hour"},
		{"run", "TVM2KAFKA_LEASE", "0"},
		{"serve", "TVM2KAFKA_LEASE", "-15m"},
		{"serve", "TVM2KAFKA_FORCE", "maybe"},
		{"serve", "TVM2KAFKA_HTTP_ADDR", "8080"},
		{"serve", "TVM2KAFKA_HTTP_ADDR", ":99999"},
		{"serve", "TVM2KAFKA_HTTP_ADDR", busy.Addr().String()},
	} {
		env := maps.Clone(base)
		env[c.env] = c.value
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{c.cmd}, envOf(env), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), c.env) {
			t.Errorf("%s %s=%q: exit %d, want 2 naming the setting:\n%s", c.cmd, c.env, c.value, code, stderr.String())
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("%d network calls", calls.Load())
	}
}

func TestVersionCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"version"}, envOf(nil), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	v := currentVersion()
	lines := strings.Split(stdout.String(), "\n")
	if lines[0] != "tvm2kafka "+v.Version || !strings.Contains(stdout.String(), v.GoVersion) || !strings.Contains(stdout.String(), v.Revision) {
		t.Fatalf("version output:\n%s", stdout.String())
	}
	if code := run(context.Background(), []string{"version", "extra"}, envOf(nil), &stdout, &stderr); code != exitUsage {
		t.Fatalf("version with an argument: exit %d", code)
	}
}

// TestMetricNames: /metrics exposes exactly the documented tvm2kafka_
// metrics (README, "Metrics"), plus the Go and process collectors.
func TestMetricNames(t *testing.T) {
	m := newMetrics(time.Hour)
	ready := &readiness{}
	srv := httptest.NewServer(m.handler(ready, nil))
	defer srv.Close()
	m.observe(outcome{result: resultComplete, res: producer.Result{Records: 7, Rejected: 1}, duration: 3 * time.Second,
		manifest: schema.Manifest{GeneratedTime: "2026-03-01T10:00:00.1234567Z"}, topicGeneratedTime: "2026-03-01T10:00:00.1234567Z"}, time.Unix(1_800_000_000, 0))
	m.exportAnswer("200")

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for name := range fams {
		if strings.HasPrefix(name, "tvm2kafka_") {
			ours = append(ours, name)
		}
	}
	sort.Strings(ours)
	want := []string{
		"tvm2kafka_build_info",
		"tvm2kafka_export_api_requests_total",
		"tvm2kafka_export_generated_timestamp_seconds",
		"tvm2kafka_last_complete_snapshot_timestamp_seconds",
		"tvm2kafka_last_snapshot_failed",
		"tvm2kafka_records_published_total",
		"tvm2kafka_records_rejected_total",
		"tvm2kafka_snapshot_duration_seconds",
		"tvm2kafka_snapshot_in_progress",
		"tvm2kafka_snapshot_interval_seconds",
		"tvm2kafka_snapshots_total",
	}
	if !slices.Equal(ours, want) {
		t.Fatalf("tvm2kafka metrics %v, want %v", ours, want)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("collector metric %s missing", name)
		}
	}
	if got := fams["tvm2kafka_snapshots_total"].Metric; len(got) != 5 {
		t.Errorf("snapshots_total has %d result labels, want all 5 from the start", len(got))
	}
	if v := fams["tvm2kafka_export_generated_timestamp_seconds"].Metric[0].Gauge.GetValue(); v < 1772359200.12 || v > 1772359200.13 {
		t.Errorf("export_generated_timestamp_seconds %v", v)
	}
	if v := fams["tvm2kafka_last_complete_snapshot_timestamp_seconds"].Metric[0].Gauge.GetValue(); v != 1_800_000_000 {
		t.Errorf("last_complete_snapshot_timestamp_seconds %v", v)
	}
	// The README documents every one of them.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want {
		if !strings.Contains(string(readme), "`"+name) {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

func TestMetricsFollowOutcomes(t *testing.T) {
	m := newMetrics(time.Hour)
	now := time.Unix(1_800_000_000, 0)
	m.observe(outcome{result: resultAborted, err: errors.New("x")}, now)
	if v := gaugeValue(t, m, "tvm2kafka_last_snapshot_failed"); v != 1 {
		t.Fatalf("last_snapshot_failed %v after an abort", v)
	}
	if v := gaugeValue(t, m, "tvm2kafka_last_complete_snapshot_timestamp_seconds"); v != 0 {
		t.Fatalf("last complete %v after an abort", v)
	}
	m.observe(outcome{result: resultUnchanged, topicGeneratedTime: "2026-03-01T10:00:00Z"}, now)
	if v := gaugeValue(t, m, "tvm2kafka_last_snapshot_failed"); v != 0 {
		t.Fatalf("last_snapshot_failed %v after an unchanged run", v)
	}
	if v := gaugeValue(t, m, "tvm2kafka_last_complete_snapshot_timestamp_seconds"); v != 1_800_000_000 {
		t.Fatalf("last complete %v after an unchanged run", v)
	}
}

func gaugeValue(t *testing.T, m *metrics, name string) float64 {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.Metric[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

func TestReadiness(t *testing.T) {
	r := &readiness{}
	check := func(want bool, reason string) {
		t.Helper()
		ok, why := r.ready()
		if ok != want || !strings.Contains(why, reason) {
			t.Fatalf("ready %v %q, want %v with %q", ok, why, want, reason)
		}
	}
	check(false, "in progress")
	r.observe(outcome{result: resultFailed, err: errors.New("Defender API denied access")})
	check(false, "Defender API denied access")
	r.observe(outcome{result: resultComplete, manifest: schema.Manifest{GeneratedTime: "G1"}, topicGeneratedTime: "G1"})
	check(true, "G1")
	r.observe(outcome{result: resultFailed, err: errors.New("export API down")}) // no manifest: nothing new known
	check(true, "G1")
	r.observe(outcome{result: resultAborted, err: errors.New("blob gone"), manifest: schema.Manifest{GeneratedTime: "G2"}, topicGeneratedTime: "G1"})
	check(false, "G2")
	r.observe(outcome{result: resultUnchanged, manifest: schema.Manifest{GeneratedTime: "G2"}, topicGeneratedTime: "G2"})
	check(true, "G2")
}

func TestReadyzAnswers503WithReason(t *testing.T) {
	m := newMetrics(time.Hour)
	r := &readiness{}
	srv := httptest.NewServer(m.handler(r, []string{"hunter2-secret"}))
	defer srv.Close()
	r.observe(outcome{result: resultFailed, err: errors.New("failed with hunter2-secret")})
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body.String(), "hunter2") || !strings.Contains(body.String(), "failed") {
		t.Fatalf("/readyz %d %q", resp.StatusCode, body.String())
	}
	resp, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz %d", resp.StatusCode)
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if j := jitter(time.Hour); j < 0 || j > 6*time.Minute {
			t.Fatalf("jitter %v outside 0..10 %%", j)
		}
	}
	if jitter(5*time.Nanosecond) != 0 {
		t.Fatal("jitter of a tiny interval")
	}
}

func TestAnswerCounter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	var codes []string
	c := &http.Client{Transport: &answerCounter{count: func(code string) { codes = append(codes, code) }}}
	for _, p := range []string{"/", "/busy"} {
		resp, err := c.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := c.Get("http://127.0.0.1:1/"); err == nil {
		t.Fatal("no error from a closed port")
	}
	if !slices.Equal(codes, []string{"200", "429", "error"}) {
		t.Fatalf("codes %v", codes)
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	if lim, set := applyMemoryLimit(resources{}); lim != 0 || set {
		t.Fatalf("no limits: %d %v", lim, set)
	}
	if lim, set := applyMemoryLimit(resources{goMemLimit: 300 << 20, cgroupMemory: 1 << 30}); lim != 300<<20 || set {
		t.Fatalf("GOMEMLIMIT given: %d %v, want it kept", lim, set)
	}
	if debug.SetMemoryLimit(-1) != prev {
		t.Fatal("a given GOMEMLIMIT was changed")
	}
	gib := int64(1 << 30)
	lim, set := applyMemoryLimit(resources{cgroupMemory: gib})
	if !set || lim != gib*9/10 || debug.SetMemoryLimit(-1) != lim {
		t.Fatalf("container limit 1 GiB: GOMEMLIMIT %d (set %v), runtime %d", lim, set, debug.SetMemoryLimit(-1))
	}
}

func TestNextRun(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if got := nextRun(outcome{started: start, result: resultComplete}, time.Hour, time.Minute); !got.Equal(start.Add(61 * time.Minute)) {
		t.Fatalf("after a complete run: %v", got)
	}
	if got := nextRun(outcome{started: start, result: resultFailed, err: errors.New("x")}, time.Hour, 0); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("after a failed run: %v", got)
	}
	// Refused by a lease that expires in 10 minutes: retried then.
	lease := &leaseError{run: wire.UnfinishedRun{RunID: "r", LastWrite: start.Add(-5 * time.Minute)}, lease: 15 * time.Minute}
	if got := nextRun(outcome{started: start, result: resultSkipped, err: lease}, time.Hour, 0); !got.Equal(start.Add(10*time.Minute + time.Second)) {
		t.Fatalf("after a lease refusal: %v", got)
	}
	// ... but never later than the interval.
	if got := nextRun(outcome{started: start, result: resultSkipped, err: lease}, 5*time.Minute, 0); !got.Equal(start.Add(5 * time.Minute)) {
		t.Fatalf("short interval after a lease refusal: %v", got)
	}
}
