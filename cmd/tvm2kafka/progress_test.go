package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/producer"
)

// fakeProgress is a run a third through: no part done yet, 2 of 4 parts
// open (100 MB of 200 MB known), 42 MB downloaded.
type fakeProgress struct{ p producer.Progress }

func (f fakeProgress) Progress() producer.Progress      { return f.p }
func (f fakeProgress) BytesDownloaded() int64           { return 42e6 }
func (f fakeProgress) KnownSizes() (bytes int64, n int) { return 200e6, 2 }

func TestProgressLogLineWhenNotATerminal(t *testing.T) {
	var logs, out testutil.SyncBuffer
	snap := fakeProgress{producer.Progress{PartsDone: 0, PartsTotal: 4, Records: 2500, Rejected: 3, LineBytes: 3e6}}
	p := newProgress(newTerminal(&out), time.Millisecond)
	if p.term.tty {
		t.Fatal("a buffer is not a terminal")
	}
	stop := p.start(snap, snap, zerolog.New(&logs))
	testutil.Poll(t, 10*time.Second, "a progress line", func() bool { return strings.Contains(logs.String(), `"message":"progress"`) })
	stop()
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(logs.String(), "\n", 2)[0]), &line); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"parts_done", "parts", "records", "rejected", "records_per_s", "mb_per_s", "percent", "eta"} {
		if _, ok := line[k].(float64); !ok {
			t.Errorf("progress field %s = %#v, want a number", k, line[k])
		}
	}
	// 42 MB of an estimated 400 MB (4 parts of 50 MB), before any part is done.
	if line["percent"] != 10.5 {
		t.Errorf("percent = %v, want 10.5", line["percent"])
	}
	if out.String() != "" {
		t.Errorf("no live line off a terminal: %q", out.String())
	}
}

func TestProgressLiveLineOnATerminal(t *testing.T) {
	var out testutil.SyncBuffer
	term := &terminal{out: &out, tty: true, width: func() int { return 60 }}
	snap := fakeProgress{producer.Progress{PartsDone: 2, PartsTotal: 8, Records: 1234, LineBytes: 5e6}}
	p := &progress{term: term, interval: time.Millisecond}
	var logs testutil.SyncBuffer
	stop := p.start(snap, snap, zerolog.New(&logs))
	testutil.Poll(t, 10*time.Second, "the live progress line", func() bool { return strings.Contains(out.String(), "\r\033[K") })
	// A log line in the middle: the live line is cleared first and drawn
	// again after it, so the two never share a line.
	log := newLogger(&config{logFormat: "console", logLevel: zerolog.InfoLevel}, term)
	log.Info().Msg("snapshot-end written")
	stop()
	got := out.String()
	i := strings.Index(got, "snapshot-end written")
	if i < 0 {
		t.Fatalf("log line missing: %q", got)
	}
	before := got[:i]
	if j := strings.LastIndex(before, "\r\033[K"); j < 0 || strings.Contains(before[j:], "records") {
		t.Fatalf("the live line was not cleared before the log line: %q", got)
	}
	if !strings.Contains(got[i:], "\n") || !strings.Contains(got[i:], "records 1234") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("the live line was not drawn again after the log line, or not ended: %q", got)
	}
	for _, l := range strings.Split(got, "\r\033[K") {
		l = strings.TrimSuffix(l, "\n")
		if !strings.Contains(l, "snapshot-end") && len(l) >= 60 {
			t.Errorf("live line of %d columns on a 60-column terminal: %q", len(l), l)
		}
	}
	if !strings.Contains(got, "%  ETA ") || !strings.Contains(got, "parts 2/8") || !strings.Contains(got, "/s)") {
		t.Errorf("live line lacks percentage, records/s or ETA: %q", got)
	}
	if logs.String() != "" {
		t.Fatalf("a terminal gets no progress log lines: %s", logs.String())
	}
}

func TestNoColourOffATerminal(t *testing.T) {
	var out testutil.SyncBuffer
	log := newLogger(&config{logFormat: "console", logLevel: zerolog.InfoLevel}, newTerminal(&out))
	log.Error().Str("k", "v").Msg("x")
	if strings.Contains(out.String(), "\x1b[") {
		t.Fatalf("colour codes in output that is not a terminal: %q", out.String())
	}
}

func TestMeasure(t *testing.T) {
	st := measure(producer.Progress{PartsDone: 0, PartsTotal: 4, Records: 3000, LineBytes: 4e6}, fakeProgress{}, 10*time.Second)
	if st.percent != 10.5 || st.recordsPerS != 300 {
		t.Errorf("percent %v records/s %v", st.percent, st.recordsPerS)
	}
	// 42 of 400 MB in 10 s: 358 MB left at the same pace.
	elapsed := 10 * time.Second
	if want := time.Duration(float64(elapsed) * 358e6 / 42e6); st.eta != want {
		t.Errorf("eta %v, want %v", st.eta, want)
	}
	done := measure(producer.Progress{PartsDone: 4, PartsTotal: 4}, fakeProgress{}, time.Second)
	if done.percent != 100 || done.eta != 0 {
		t.Errorf("done: %v %v", done.percent, done.eta)
	}
	unknown := measure(producer.Progress{PartsTotal: 4}, nothingOpen{}, time.Second)
	if unknown.percent != -1 || unknown.eta != -1 || !strings.Contains(unknown.line(), "?%") {
		t.Errorf("before any part is open: %v %v %q", unknown.percent, unknown.eta, unknown.line())
	}
}

type nothingOpen struct{}

func (nothingOpen) BytesDownloaded() int64           { return 0 }
func (nothingOpen) KnownSizes() (bytes int64, n int) { return 0, 0 }
