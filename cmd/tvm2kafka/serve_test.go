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

	"github.com/tvm2kafka/tvm2kafka/internal/runner"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/producer"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

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
	ready := newReadiness(schema.Exports()[:1])
	srv := httptest.NewServer(m.handler(ready, nil))
	defer srv.Close()
	m.observe(runner.Outcome{Result: runner.Complete, Res: producer.Result{Records: 7, Rejected: 1}, Duration: 3 * time.Second,
		Manifest: schema.Manifest{GeneratedTime: "2026-03-01T10:00:00.1234567Z"}, TopicGeneratedTime: "2026-03-01T10:00:00.1234567Z"}, time.Unix(1_800_000_000, 0))
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
		"tvm2kafka_duplicate_keys_total",
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
		"tvm2kafka_value_members_untyped_total",
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
	readme := testutil.Docs(t, "../..")
	for _, name := range want {
		if !strings.Contains(readme, "`"+name) {
			t.Errorf("README.md does not document %s", name)
		}
	}
}

func TestMetricsFollowOutcomes(t *testing.T) {
	m := newMetrics(time.Hour)
	now := time.Unix(1_800_000_000, 0)
	m.observe(runner.Outcome{Result: runner.Aborted, Err: errors.New("x")}, now)
	if v := gaugeValue(t, m, "tvm2kafka_last_snapshot_failed"); v != 1 {
		t.Fatalf("last_snapshot_failed %v after an abort", v)
	}
	if v := gaugeValue(t, m, "tvm2kafka_last_complete_snapshot_timestamp_seconds"); v != 0 {
		t.Fatalf("last complete %v after an abort", v)
	}
	m.observe(runner.Outcome{Result: runner.Unchanged, TopicGeneratedTime: "2026-03-01T10:00:00Z"}, now)
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
	r := newReadiness(schema.Exports()[:1])
	check := func(want bool, reason string) {
		t.Helper()
		ok, why := r.ready()
		if ok != want || !strings.Contains(why, reason) {
			t.Fatalf("ready %v %q, want %v with %q", ok, why, want, reason)
		}
	}
	check(false, "in progress")
	r.observe(runner.Outcome{Result: runner.Failed, Err: errors.New("Defender API denied access")})
	check(false, "Defender API denied access")
	r.observe(runner.Outcome{Result: runner.Complete, Manifest: schema.Manifest{GeneratedTime: "G1"}, TopicGeneratedTime: "G1"})
	check(true, "G1")
	r.observe(runner.Outcome{Result: runner.Failed, Err: errors.New("export API down")}) // no Manifest: nothing new known
	check(true, "G1")
	r.observe(runner.Outcome{Result: runner.Aborted, Err: errors.New("blob gone"), Manifest: schema.Manifest{GeneratedTime: "G2"}, TopicGeneratedTime: "G1"})
	check(false, "G2")
	r.observe(runner.Outcome{Result: runner.Unchanged, Manifest: schema.Manifest{GeneratedTime: "G2"}, TopicGeneratedTime: "G2"})
	check(true, "G2")
}

func TestReadyzAnswers503WithReason(t *testing.T) {
	m := newMetrics(time.Hour)
	r := newReadiness(schema.Exports()[:1])
	srv := httptest.NewServer(m.handler(r, []string{"hunter2-secret"}))
	defer srv.Close()
	r.observe(runner.Outcome{Result: runner.Failed, Err: errors.New("failed with hunter2-secret")})
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
	if got := nextRun(runner.Outcome{Started: start, Result: runner.Complete}, time.Hour, time.Minute); !got.Equal(start.Add(61 * time.Minute)) {
		t.Fatalf("after a complete run: %v", got)
	}
	if got := nextRun(runner.Outcome{Started: start, Result: runner.Failed, Err: errors.New("x")}, time.Hour, 0); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("after a failed run: %v", got)
	}
	// Refused by a lease that expires in 10 minutes: retried then.
	lease := &runner.LeaseError{Run: wire.UnfinishedRun{RunID: "r", LastWrite: start.Add(-5 * time.Minute)}, Lease: 15 * time.Minute}
	if got := nextRun(runner.Outcome{Started: start, Result: runner.Skipped, Err: lease, Lease: lease}, time.Hour, 0); !got.Equal(start.Add(10*time.Minute + time.Second)) {
		t.Fatalf("after a lease refusal: %v", got)
	}
	// ... but never later than the interval.
	if got := nextRun(runner.Outcome{Started: start, Result: runner.Skipped, Err: lease, Lease: lease}, 5*time.Minute, 0); !got.Equal(start.Add(5 * time.Minute)) {
		t.Fatalf("short interval after a lease refusal: %v", got)
	}
}

// TestReadyzWithSeveralExports: with MDE_EXPORTS, /readyz is 200 only
// when every export's topic holds a complete snapshot of its latest
// export, and the reason names each export.
func TestReadyzWithSeveralExports(t *testing.T) {
	all := schema.Exports()
	r := newReadiness(all[1:3])
	ok := func(export string) runner.Outcome {
		return runner.Outcome{Result: runner.Complete, Manifest: schema.Manifest{Export: export, GeneratedTime: "G"}, TopicGeneratedTime: "G"}
	}
	r.observe(ok(all[1].Name))
	if ready, why := r.ready(); ready || !strings.Contains(why, all[2].Name+": the first snapshot is in progress") {
		t.Fatalf("ready %v: %s", ready, why)
	}
	r.observe(ok(all[2].Name))
	if ready, why := r.ready(); !ready || !strings.Contains(why, all[1].Name+": the topic holds a complete snapshot") {
		t.Fatalf("ready %v: %s", ready, why)
	}
}
