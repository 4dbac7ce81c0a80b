//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// Unchanged exports, concurrent runs (the lease), `tvm2kafka serve` with
// its metrics and probes, and `tvm2kafka version` (README "Unchanged
// exports and concurrent runs", "Serve", "Metrics"), against the built
// binary, the real broker and Azurite.

// ---------------------------------------------------------------- helpers

// live is a tvm2kafka process whose output is read while it runs.
type live struct {
	cmd            *exec.Cmd
	stdout, stderr *testutil.SyncBuffer
	began          time.Time
	done           chan struct{}
	err            error
}

// launch starts `tvm2kafka args...` against this world; it is killed when
// the test ends if it is still running (finish bounds how long it may run).
func (w *world) launch(extra map[string]string, args ...string) *live {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = w.env(extra)
	p := &live{cmd: cmd, stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	p.began = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		w.t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	w.t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// finish waits at most limit for p to exit and checks its output for secrets.
func (w *world) finish(p *live, limit time.Duration) result {
	w.t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
		w.t.Fatalf("tvm2kafka still running after %v\n%s", limit, tail(p.stderr.String(), 30))
	}
	res := result{Code: p.cmd.ProcessState.ExitCode(), Stdout: p.stdout.String(), Stderr: p.stderr.String(), Elapsed: time.Since(p.began)}
	if p.err != nil && res.Code < 0 && p.cmd.ProcessState.String() != "signal: killed" {
		w.t.Fatalf("tvm2kafka did not run: %v\n%s", p.err, res.Stderr)
	}
	w.assertNoSecrets(res.Stdout + res.Stderr)
	return res
}

// pollLive is testutil.Poll for a condition that p brings about: it stops
// waiting when p exits first, and shows p's log when it fails.
func (w *world) pollLive(p *live, limit time.Duration, what string, cond func() bool) {
	w.t.Helper()
	held := false
	defer func() {
		if !held {
			w.t.Logf("tvm2kafka's log:\n%s", tail(p.stderr.String(), 30))
		}
	}()
	testutil.Poll(w.t, limit, what, func() bool {
		select {
		case <-p.done:
			w.t.Fatalf("tvm2kafka exited (%v) while waiting for %s", p.err, what)
		default:
		}
		return cond()
	})
	held = true
}

// runArgs runs `tvm2kafka args...` to completion.
func (w *world) runArgs(extra map[string]string, args ...string) result {
	w.t.Helper()
	return w.finish(w.launch(extra, args...), 5*time.Minute)
}

// logLines returns the JSON log lines of out.
func logLines(out string) []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// findLog returns the log lines whose message is msg.
func findLog(out, msg string) []map[string]any {
	var found []map[string]any
	for _, l := range logLines(out) {
		if l["message"] == msg {
			found = append(found, l)
		}
	}
	return found
}

// endSum is the number of messages in the world's topic.
func (w *world) endSum() int64 {
	w.t.Helper()
	var sum int64
	for _, e := range w.endOffsets(w.rig.Admin(w.t)) {
		sum += e
	}
	return sum
}

// newGeneration makes the Defender fake answer a new generatedTime.
func (w *world) newGeneration(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gen = t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// httpAddr waits for serve's "http endpoint listening" line.
func (w *world) httpAddr(p *live) string {
	w.t.Helper()
	var addr string
	testutil.Poll(w.t, time.Minute, "the http endpoint", func() bool {
		for _, l := range findLog(p.stderr.String(), "http endpoint listening") {
			addr, _ = l["addr"].(string)
		}
		return addr != ""
	})
	return addr
}

func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics in the Prometheus text format.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v", err)
	}
	return fams
}

// metricValue is the value of the sample of family name whose labels
// include labels; ok is false when there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricValue(fams, name, labels...)
	if !ok {
		t.Fatalf("metric %s%v missing", name, labels)
	}
	return v
}

// waitMetric polls /metrics until cond holds for the metric's value.
func waitMetric(t *testing.T, addr string, limit time.Duration, what string, name string, labels []string, cond func(float64) bool) {
	t.Helper()
	testutil.Poll(t, limit, what, func() bool {
		v, ok := metricValue(scrape(t, addr), name, labels...)
		return ok && cond(v)
	})
}

// ------------------------------------------------- unchanged, forced, changed

// TestUnchangedExportIsNotPublishedAgain: a second run of the same export
// reads the tail of the topic, publishes nothing and exits 0 with
// "snapshot unchanged"; TVM2KAFKA_FORCE publishes it again; a new
// generatedTime is published.
func TestUnchangedExportIsNotPublishedAgain(t *testing.T) {
	w := newWorld(t, 1200, 3)
	first := w.run(nil)
	if first.Code != 0 {
		t.Fatalf("first run: exit %d\n%s", first.Code, tail(first.Stderr, 30))
	}
	before, blobReqs := w.endSum(), w.blobProx.Requests()

	again := w.run(nil)
	if again.Code != 0 {
		t.Fatalf("unchanged run: exit %d, want 0\n%s", again.Code, tail(again.Stderr, 30))
	}
	if len(findLog(again.Stderr, "snapshot unchanged")) != 1 {
		t.Fatalf("no \"snapshot unchanged\" log line:\n%s", tail(again.Stderr, 20))
	}
	sum := summaryOf(t, again.Stderr)
	if sum["unchanged"] != true || sum["complete"] != false || sum["result"] != "unchanged" || sum["records"] != float64(0) {
		t.Fatalf("summary %v, want unchanged=true and no record", sum)
	}
	if got := strings.Count(again.Stderr, `"snapshot summary"`); got != 1 {
		t.Fatalf("%d summary lines, want 1", got)
	}
	if after := w.endSum(); after != before {
		t.Fatalf("the unchanged run published %d messages", after-before)
	}
	if n := w.blobProx.Requests(); n != blobReqs {
		t.Fatalf("the unchanged run read %d blob requests, want none", n-blobReqs)
	}
	if n := len(w.defender.Calls()); n != 2 {
		t.Fatalf("%d export API calls after two runs, want 2", n)
	}

	forced := w.run(map[string]string{"TVM2KAFKA_FORCE": "true"})
	if forced.Code != 0 {
		t.Fatalf("forced run: exit %d\n%s", forced.Code, tail(forced.Stderr, 30))
	}
	if sum := summaryOf(t, forced.Stderr); sum["unchanged"] != false || sum["complete"] != true {
		t.Fatalf("forced summary %v", sum)
	}
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, forced.Stderr), 0)

	w.newGeneration(time.Now())
	changed := w.run(nil, "--force=false")
	if changed.Code != 0 {
		t.Fatalf("changed export: exit %d\n%s", changed.Code, tail(changed.Stderr, 30))
	}
	if sum := summaryOf(t, changed.Stderr); sum["unchanged"] != false || sum["generated_time"] != w.gen {
		t.Fatalf("changed export summary %v", sum)
	}
	msgs, rep = w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, changed.Stderr), 0) // headers carry the new generatedTime
}

// TestAbortedSnapshotIsTakenAgain: after an aborted run the tail holds
// snapshot-abort markers, so the same export is published again although
// an older complete snapshot of it is in the topic.
func TestAbortedSnapshotIsTakenAgain(t *testing.T) {
	w := newWorld(t, 900, 3)
	if r := w.run(nil); r.Code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.Code, tail(r.Stderr, 30))
	}
	w.blobProx.Inject(partName(w, 1), fakes.Fault{Status: http.StatusNotFound})
	aborted := w.run(nil, "--force")
	if aborted.Code != 1 {
		t.Fatalf("run with a missing blob: exit %d, want 1\n%s", aborted.Code, tail(aborted.Stderr, 30))
	}
	w.assertAborted(result{Code: aborted.Code, Stderr: aborted.Stderr})
	if sum := summaryOf(t, aborted.Stderr); sum["result"] != "aborted" {
		t.Fatalf("aborted summary %v", sum)
	}

	again := w.run(nil)
	if again.Code != 0 || len(findLog(again.Stderr, "snapshot unchanged")) != 0 {
		t.Fatalf("run after the abort: exit %d, want a complete snapshot\n%s", again.Code, tail(again.Stderr, 30))
	}
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, again.Stderr), 0)
}

// ------------------------------------------------------------------ lease

// holdAllParts makes every part's first request hang, so that a run
// writes its snapshot-start markers and then waits.
func holdAllParts(w *world) (release func()) {
	hold, release := held(w.t)
	for i := range w.layout.Parts {
		w.blobProx.Inject(partName(w, i), fakes.Fault{Hold: hold})
	}
	return release
}

// startedRun starts `tvm2kafka run` with every part held and returns it
// with its run id, read from the start markers in the topic.
func (w *world) startedRun() (*live, string) {
	w.t.Helper()
	holdAllParts(w)
	p := w.launch(map[string]string{"TVM2KAFKA_WORKERS": strconv.Itoa(len(w.layout.Parts))}, "run")
	testutil.Poll(w.t, 2*time.Minute, "snapshot-start markers and held parts", func() bool {
		return w.blobProx.Held() == len(w.layout.Parts)
	})
	_, rep := w.read(w.Topic)
	if len(rep.Runs) != 1 || rep.Runs[0].Started != rep.Partitions {
		w.t.Fatalf("runs in the topic: %+v", rep.Runs)
	}
	return p, rep.Runs[0].RunID
}

// TestLiveLeaseRefusesAndForceOverrides: while another run's snapshot is
// unfinished and young, a run exits 1 naming it and publishes nothing;
// --force publishes anyway.
func TestLiveLeaseRefusesAndForceOverrides(t *testing.T) {
	w := newWorld(t, 900, 3)
	a, other := w.startedRun()
	before := w.endSum()

	b := w.run(nil)
	if b.Code != 1 {
		t.Fatalf("second run beside a live one: exit %d, want 1\n%s", b.Code, tail(b.Stderr, 30))
	}
	sum := summaryOf(t, b.Stderr)
	if sum["result"] != "skipped" || !strings.Contains(fmt.Sprint(sum["error"]), other) {
		t.Fatalf("summary %v, want result skipped and an error naming run %s", sum, other)
	}
	refused := findLog(b.Stderr, "another run is publishing to the topic; nothing published")
	if len(refused) != 1 || refused[0]["other_run_id"] != other {
		t.Fatalf("no refusal naming %s:\n%s", other, tail(b.Stderr, 20))
	}
	if after := w.endSum(); after != before {
		t.Fatalf("the refused run published %d messages", after-before)
	}

	c := w.run(nil, "--force")
	if c.Code != 0 {
		t.Fatalf("forced run beside a live one: exit %d\n%s", c.Code, tail(c.Stderr, 30))
	}
	if len(findLog(c.Stderr, "another run is publishing to the topic; publishing anyway (TVM2KAFKA_FORCE)")) != 1 {
		t.Fatalf("the forced run did not say it overrides the lease:\n%s", tail(c.Stderr, 20))
	}
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, c.Stderr), 0)

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := w.finish(a, time.Minute); res.Code != 1 {
		t.Fatalf("held run after SIGTERM: exit %d", res.Code)
	}
}

// TestDeadLeaseIsTreatedAsDead: a run killed with SIGKILL leaves its
// snapshot unfinished; within TVM2KAFKA_LEASE it still blocks the next
// run, after it the next run treats it as dead and publishes.
func TestDeadLeaseIsTreatedAsDead(t *testing.T) {
	w := newWorld(t, 900, 3)
	a, dead := w.startedRun()
	killed := time.Now()
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done

	young := w.run(nil)
	if young.Code != 1 || !strings.Contains(fmt.Sprint(summaryOf(t, young.Stderr)["error"]), dead) {
		t.Fatalf("run within the lease of a killed run: exit %d, want 1 naming %s\n%s", young.Code, dead, tail(young.Stderr, 20))
	}

	const lease = 2 * time.Second
	testutil.Poll(t, 10*time.Second, "the killed run's lease to expire", func() bool { return time.Since(killed) > lease })
	old := w.run(map[string]string{"TVM2KAFKA_LEASE": lease.String()})
	if old.Code != 0 {
		t.Fatalf("run after the lease of a killed run: exit %d\n%s", old.Code, tail(old.Stderr, 30))
	}
	deadLines := findLog(old.Stderr, "an unfinished run's lease has expired: treating it as dead")
	if len(deadLines) != 1 || deadLines[0]["other_run_id"] != dead {
		t.Fatalf("no warning naming the dead run %s:\n%s", dead, tail(old.Stderr, 20))
	}
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, runID(t, old.Stderr), 0)
}

// ------------------------------------------------------------------ serve

// TestServeOverSeveralExports: serve takes a snapshot at start, skips the
// unchanged export on the next ticks, publishes a new one, keeps the
// export API's limit of 5 calls a minute across runs, and exposes all of
// it on /metrics, /healthz and /readyz; SIGTERM ends it with exit 0.
func TestServeOverSeveralExports(t *testing.T) {
	const devices = 1000
	w := newWorld(t, devices, 2)
	hold, release := held(t)
	w.blobProx.Inject(partName(w, 0), fakes.Fault{Hold: hold})
	p := w.launch(map[string]string{"TVM2KAFKA_INTERVAL": "1s", "TVM2KAFKA_HTTP_ADDR": "127.0.0.1:0"}, "serve")
	addr := w.httpAddr(p)

	if code, _ := httpGet(t, addr, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d while serving", code)
	}
	testutil.Poll(t, time.Minute, "the first snapshot to hold on its part", func() bool { return w.blobProx.Held() == 1 })
	if code, body := httpGet(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "in progress") {
		t.Fatalf("/readyz during the first snapshot: %d %q, want 503 with a reason", code, body)
	}
	fams := scrape(t, addr)
	if v := mustMetric(t, fams, "tvm2kafka_snapshot_in_progress"); v != 1 {
		t.Fatalf("tvm2kafka_snapshot_in_progress %v during a run", v)
	}
	for _, r := range []string{"complete", "aborted", "failed", "unchanged", "skipped"} {
		if v := mustMetric(t, fams, "tvm2kafka_snapshots_total", "result", r); v != 0 {
			t.Fatalf("snapshots_total{result=%q} = %v before any run ended", r, v)
		}
	}
	release()
	waitMetric(t, addr, 2*time.Minute, "the first complete snapshot", "tvm2kafka_snapshots_total", []string{"result", "complete"}, func(v float64) bool { return v == 1 })
	firstDone := time.Now()
	if code, body := httpGet(t, addr, "/readyz"); code != http.StatusOK || !strings.Contains(body, w.gen) {
		t.Fatalf("/readyz after the first snapshot: %d %q", code, body)
	}
	fams = scrape(t, addr)
	gen0, _ := time.Parse(time.RFC3339Nano, w.gen)
	checks := []struct {
		name   string
		labels []string
		ok     func(float64) bool
	}{
		{"tvm2kafka_records_published_total", nil, func(v float64) bool { return v == devices }},
		{"tvm2kafka_records_rejected_total", nil, func(v float64) bool { return v == 0 }},
		{"tvm2kafka_export_generated_timestamp_seconds", nil, func(v float64) bool { return v == float64(gen0.Unix()) }},
		{"tvm2kafka_last_complete_snapshot_timestamp_seconds", nil, func(v float64) bool {
			return v > float64(p.began.Unix()) && v <= float64(firstDone.Unix()+1)
		}},
		{"tvm2kafka_snapshot_duration_seconds", nil, func(v float64) bool { return v == 1 }}, // sample count
		{"tvm2kafka_export_api_requests_total", []string{"code", "200"}, func(v float64) bool { return v >= 1 }},
		{"tvm2kafka_build_info", nil, func(v float64) bool { return v == 1 }},
		{"tvm2kafka_last_snapshot_failed", nil, func(v float64) bool { return v == 0 }},
		{"tvm2kafka_snapshot_interval_seconds", nil, func(v float64) bool { return v == 1 }},
		{"go_goroutines", nil, func(v float64) bool { return v > 0 }},
		{"process_resident_memory_bytes", nil, func(v float64) bool { return v > 0 }},
	}
	for _, c := range checks {
		if v := mustMetric(t, fams, c.name, c.labels...); !c.ok(v) {
			t.Errorf("%s%v = %v", c.name, c.labels, v)
		}
	}
	if l := fams["tvm2kafka_build_info"].Metric[0].Label; !slices.ContainsFunc(l, func(lp *dto.LabelPair) bool {
		return lp.GetName() == "version" && lp.GetValue() != ""
	}) {
		t.Errorf("tvm2kafka_build_info without a version label: %v", l)
	}
	ends := w.endSum()

	// The next ticks find the export unchanged.
	waitMetric(t, addr, time.Minute, "two unchanged runs", "tvm2kafka_snapshots_total", []string{"result", "unchanged"}, func(v float64) bool { return v >= 2 })
	if got := w.endSum(); got != ends {
		t.Fatalf("unchanged runs published %d messages", got-ends)
	}
	if v := mustMetric(t, scrape(t, addr), "tvm2kafka_records_published_total"); v != devices {
		t.Fatalf("records_published_total %v after unchanged runs", v)
	}

	// A new export is published at the next tick.
	w.newGeneration(time.Now())
	gen1, _ := time.Parse(time.RFC3339Nano, w.gen)
	waitMetric(t, addr, 2*time.Minute, "the second complete snapshot", "tvm2kafka_snapshots_total", []string{"result", "complete"}, func(v float64) bool { return v == 2 })
	fams = scrape(t, addr)
	if v := mustMetric(t, fams, "tvm2kafka_records_published_total"); v != 2*devices {
		t.Fatalf("records_published_total %v, want %d", v, 2*devices)
	}
	if v := mustMetric(t, fams, "tvm2kafka_export_generated_timestamp_seconds"); v != float64(gen1.UnixNano())/1e9 {
		t.Fatalf("export_generated_timestamp_seconds %v, want %v", v, float64(gen1.UnixNano())/1e9)
	}
	if code, body := httpGet(t, addr, "/readyz"); code != http.StatusOK || !strings.Contains(body, w.gen) {
		t.Fatalf("/readyz after the new export: %d %q", code, body)
	}
	msgs, rep := w.read(w.Topic)
	last := rep.Runs[len(rep.Runs)-1]
	w.assertSnapshot(msgs, rep, last.RunID, 0)

	// One limiter for the process: runs every second, but never more than
	// 5 export API calls in a minute.
	testutil.Poll(t, 2*time.Minute, "a sixth export API call", func() bool { return len(w.defender.Calls()) >= 6 })
	calls := w.defender.Calls()
	for i := 5; i < len(calls); i++ {
		if d := calls[i].Sub(calls[i-5]); d < time.Minute {
			t.Fatalf("export API calls %d and %d only %v apart: more than 5 in a minute", i-5, i, d)
		}
	}
	if v := mustMetric(t, scrape(t, addr), "tvm2kafka_export_api_requests_total", "code", "200"); int(v) != len(w.defender.Calls()) && int(v) != len(w.defender.Calls())-1 {
		t.Fatalf("export_api_requests_total{code=200} %v, Defender saw %d calls", v, len(w.defender.Calls()))
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := w.finish(p, 40*time.Second)
	if res.Code != 0 {
		t.Fatalf("serve after SIGTERM: exit %d, want 0\n%s", res.Code, tail(res.Stderr, 20))
	}
	for _, l := range findLog(res.Stderr, "snapshot starting") {
		if l["version"] == "" || l["settings"] == nil {
			t.Fatalf("a run's first line lacks version or settings: %v", l)
		}
	}
}

// TestServeStopsBetweenRunsAtOnce: SIGTERM while serve waits for the next
// tick ends it at once with exit 0, publishing nothing more.
func TestServeStopsBetweenRunsAtOnce(t *testing.T) {
	w := newWorld(t, 500, 2)
	p := w.launch(map[string]string{"TVM2KAFKA_INTERVAL": "1h", "TVM2KAFKA_HTTP_ADDR": "127.0.0.1:0"}, "serve")
	addr := w.httpAddr(p)
	waitMetric(t, addr, 2*time.Minute, "the first snapshot", "tvm2kafka_snapshots_total", []string{"result", "complete"}, func(v float64) bool { return v == 1 })
	waitMetric(t, addr, time.Minute, "the run to end", "tvm2kafka_snapshot_in_progress", nil, func(v float64) bool { return v == 0 })
	ends := w.endSum()
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := w.finish(p, 30*time.Second)
	if res.Code != 0 {
		t.Fatalf("exit %d, want 0\n%s", res.Code, tail(res.Stderr, 20))
	}
	if took := time.Since(signalled); took > 5*time.Second {
		t.Fatalf("serve took %v to stop between runs", took)
	}
	if got := w.endSum(); got != ends {
		t.Fatalf("%d messages published after SIGTERM", got-ends)
	}
	if n := strings.Count(res.Stderr, `"snapshot summary"`); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	if len(findLog(res.Stderr, "serve stopped by signal")) != 1 {
		t.Fatalf("no stop line:\n%s", tail(res.Stderr, 10))
	}
}

// TestServeSIGTERMDuringRunAbortsAndExits0: SIGTERM during a run writes
// snapshot-abort on every partition, then serve exits 0.
func TestServeSIGTERMDuringRunAbortsAndExits0(t *testing.T) {
	w := newWorld(t, 1500, 3)
	hold, _ := held(t)
	w.blobProx.Inject(partName(w, 0), fakes.Fault{Hold: hold})
	others := int64(0)
	for _, p := range w.layout.Parts[1:] {
		others += int64(p.Devices)
	}
	p := w.launch(map[string]string{"TVM2KAFKA_HTTP_ADDR": "127.0.0.1:0"}, "serve")
	adm := w.rig.Admin(t)
	testutil.Poll(t, 2*time.Minute, "start markers and the other parts' records", func() bool {
		return w.startedWith(adm, others) && w.blobProx.Held() == 1
	})
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := w.finish(p, 40*time.Second)
	if took := time.Since(signalled); took > 30*time.Second {
		t.Fatalf("exited %v after SIGTERM", took)
	}
	if res.Code != 0 {
		t.Fatalf("serve after SIGTERM during a run: exit %d, want 0\n%s", res.Code, tail(res.Stderr, 20))
	}
	run := w.assertAborted(result{Code: res.Code, Stderr: res.Stderr})
	if run.Records != others {
		t.Fatalf("aborted run holds %d records, want %d", run.Records, others)
	}
}

// ---------------------------------------------------------- version, input

// TestVersion: `tvm2kafka version` prints the version stamped with
// -ldflags, the Go version and the commit; every run's first log line
// carries the version and the effective settings, secrets redacted.
func TestVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "tvm2kafka")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7-e2e -X main.revision=0123abcdef", "-o", bin, "github.com/tvm2kafka/tvm2kafka/cmd/tvm2kafka")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tvm2kafka v9.8.7-e2e\n", "go1.", "0123abcdef"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}

	// The harness's binary: its version and its first log line.
	out, err = exec.Command(binPath, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimPrefix(strings.SplitN(string(out), "\n", 2)[0], "tvm2kafka ")
	w := newWorld(t, 200, 1)
	r := w.run(nil)
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, tail(r.Stderr, 20))
	}
	first := logLines(r.Stderr)[0]
	settings, _ := first["settings"].(map[string]any)
	if first["version"] != version || settings == nil {
		t.Fatalf("first log line %v, want version %q and the settings", first, version)
	}
	for k, want := range map[string]string{
		"AZURE_CLIENT_SECRET": "[REDACTED]", "AZURE_TENANT_ID": tenantID, "KAFKA_TOPIC": w.Topic,
		"TVM2KAFKA_LEASE": "15m", "KAFKA_COMPRESSION": "lz4",
	} {
		if settings[k] != want {
			t.Errorf("settings[%s] = %v, want %q", k, settings[k], want)
		}
	}
}

// TestBadScheduleSettingsExit2: intervals and leases that are not positive
// durations, and an address that cannot be bound, end with exit 2 naming
// the setting before any network call.
func TestBadScheduleSettingsExit2(t *testing.T) {
	w := newWorld(t, 10, 1)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		cmd, env, value string
	}{
		{"serve", "TVM2KAFKA_INTERVAL", "0"},
		{"serve", "TVM2KAFKA_INTERVAL", "-5m"},
		{"serve", "TVM2KAFKA_INTERVAL", "hourly"},
		{"serve", "TVM2KAFKA_LEASE", "0s"},
		{"run", "TVM2KAFKA_LEASE", "forever"},
		{"serve", "TVM2KAFKA_HTTP_ADDR", busy.Addr().String()},
		{"serve", "TVM2KAFKA_HTTP_ADDR", "localhost"},
	}
	for _, c := range cases {
		r := w.runArgs(map[string]string{c.env: c.value}, c.cmd)
		if r.Code != 2 || !strings.Contains(r.Stderr, c.env) {
			t.Errorf("%s with %s=%q: exit %d, want 2 naming the setting\n%s", c.cmd, c.env, c.value, r.Code, r.Stderr)
		}
	}
	if n := len(w.defender.Calls()); n != 0 || w.entra.TokenRequests() != 0 {
		t.Fatalf("bad settings made %d export API calls and %d token requests", n, w.entra.TokenRequests())
	}
	w.assertNoMessages()
}
