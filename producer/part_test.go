package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// A part that keeps failing at the same line is given up once
// RetryMaxElapsed has passed without progress; each reopening is logged
// with the line to resume after.
func TestSnapshotPartGivesUpWithoutProgress(t *testing.T) {
	const partitions = 2
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 1)
	var lines []string
	for i := range 20 {
		lines = append(lines, recordLine(0, i))
	}
	content := strings.Join(lines, "\n") + "\n"
	cut := strings.Index(content, lines[10]) + 5 // inside line 11
	var opens atomic.Int32
	parts := PartOpenerFunc(func(context.Context, schema.Part) (io.ReadCloser, error) {
		opens.Add(1)
		return io.NopCloser(&failingReader{strings.NewReader(content[:cut]), errTransient}), nil
	})
	var logs testutil.SyncBuffer
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000,
		Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-giveup", RetryMaxElapsed: 50 * time.Millisecond,
		Retryable: func(err error) bool { return errors.Is(err, errTransient) }, Logger: zerolog.New(&logs),
	}, parts, k)
	if err != nil {
		t.Fatal(err)
	}
	s.retryInitial = time.Millisecond
	_, err = s.Run(context.Background())
	n := opens.Load()
	var pe *PartError
	if !errors.As(err, &pe) || pe.Line != 11 || !errors.Is(err, errTransient) || !strings.Contains(err.Error(), fmt.Sprintf("gave up after %d attempts", n)) {
		t.Fatalf("Run error %v, want a PartError at line 11 wrapping the read error, given up after %d attempts", err, n)
	}
	if n < 3 {
		t.Errorf("part opened %d times, want several reopenings before giving up", n)
	}
	reopenings := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"message":"part read failed; reopening"`) {
			reopenings++
			if !strings.Contains(l, `"line":11`) || !strings.Contains(l, `"resume_after_line":10`) || !strings.Contains(l, `"retry_in":`) {
				t.Errorf("reopening logged without its position: %s", l)
			}
		}
	}
	if reopenings != int(n)-1 {
		t.Errorf("%d reopenings logged for %d opens, want one per reopening", reopenings, n)
	}
	checkAborted(t, readTopic(t, c.ListenAddrs(), "records"), partitions, "run-giveup")
}

// The backoff of a part's reopenings starts again when the part read
// further since the previous failure.
func TestProgressBackOffRestartsOnProgress(t *testing.T) {
	eb := reopenBackOff(time.Millisecond, time.Hour)
	eb.RandomizationFactor = 0
	var lines int64
	b := &progressBackOff{ExponentialBackOff: eb, progress: &lines}
	b.Reset()
	step := func(want time.Duration) {
		t.Helper()
		if got := b.NextBackOff(); got != want {
			t.Fatalf("NextBackOff = %v, want %v", got, want)
		}
	}
	step(time.Millisecond)
	step(1500 * time.Microsecond)
	step(2250 * time.Microsecond)
	lines = 5 // progress
	step(time.Millisecond)
	step(1500 * time.Microsecond) // none since
}
