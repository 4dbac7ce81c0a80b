package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/producer"
)

type fakeProgress struct{ p producer.Progress }

func (f fakeProgress) Progress() producer.Progress { return f.p }
func (f fakeProgress) BytesDownloaded() int64      { return 42e6 }

func waitFor(t *testing.T, buf *testutil.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, buf.String())
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded by the deadline
	}
}

func TestProgressLogLineWhenNotATerminal(t *testing.T) {
	var logs testutil.SyncBuffer
	snap := fakeProgress{producer.Progress{PartsDone: 1, PartsTotal: 4, Records: 2500, Rejected: 3, LineBytes: 3e6}}
	p := newProgress(&bytes.Buffer{}, time.Millisecond)
	if p.tty {
		t.Fatal("a buffer is not a terminal")
	}
	stop := p.start(snap, snap, zerolog.New(&logs))
	waitFor(t, &logs, `"message":"progress"`)
	stop()
	line := strings.SplitN(logs.String(), "\n", 2)[0]
	for _, want := range []string{`"parts_done":1`, `"parts":4`, `"records":2500`, `"rejected":3`, `"mb_per_s"`, `"eta"`} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line lacks %s: %s", want, line)
		}
	}
}

func TestProgressLiveLineOnATerminal(t *testing.T) {
	var out testutil.SyncBuffer
	snap := fakeProgress{producer.Progress{PartsDone: 2, PartsTotal: 8, Records: 1234, LineBytes: 5e6}}
	p := &progress{out: &out, tty: true, interval: time.Millisecond}
	var logs testutil.SyncBuffer
	stop := p.start(snap, snap, zerolog.New(&logs))
	waitFor(t, &out, "\r\033[K")
	stop()
	got := out.String()
	if !strings.Contains(got, "parts 2/8") || !strings.Contains(got, "records 1234") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("live line: %q", got)
	}
	if logs.String() != "" {
		t.Fatalf("a terminal gets no progress log lines: %s", logs.String())
	}
}

func TestETA(t *testing.T) {
	if got := eta(producer.Progress{PartsDone: 0, PartsTotal: 4}, time.Minute); got != "?" {
		t.Errorf("eta before the first part: %s", got)
	}
	if got := eta(producer.Progress{PartsDone: 1, PartsTotal: 4}, 10*time.Second); got != "30s" {
		t.Errorf("eta after 1 of 4 parts in 10s: %s", got)
	}
}
