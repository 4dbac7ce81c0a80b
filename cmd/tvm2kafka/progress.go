package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/runner"
	"github.com/tvm2kafka/tvm2kafka/producer"
)

// progress reports a running snapshot: a live line when stderr is a
// terminal, otherwise a structured log line every interval.
type progress struct {
	term     *terminal
	interval time.Duration
}

func newProgress(t *terminal, interval time.Duration) *progress {
	if t.tty {
		interval = 250 * time.Millisecond
	}
	return &progress{term: t, interval: interval}
}

// progressSource is what progress reads: the snapshot and the blob reader.
type progressSource interface {
	Progress() producer.Progress
}

type bytesSource interface {
	// BytesDownloaded is the compressed bytes read so far.
	BytesDownloaded() int64
	// KnownSizes is the compressed size of the parts opened so far and
	// their number.
	KnownSizes() (bytes int64, parts int)
}

// start begins reporting and returns the function that stops it.
func (p *progress) start(snap progressSource, blobs bytesSource, log zerolog.Logger) (stop func()) {
	if p == nil || p.interval <= 0 {
		return func() {}
	}
	began := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	report := func() {
		st := measure(snap.Progress(), blobs, time.Since(began))
		if p.term.tty {
			p.term.show(st.line())
			return
		}
		ev := log.Info().Int("parts_done", st.PartsDone).Int("parts", st.PartsTotal).
			Int64("records", st.Records).Int64("rejected", st.Rejected).
			Float64("records_per_s", round1(st.recordsPerS)).Float64("mb_per_s", round1(st.mbPerS))
		if st.percent >= 0 {
			ev = ev.Float64("percent", round1(st.percent))
		}
		if st.eta >= 0 {
			ev = ev.Dur("eta", st.eta.Round(time.Second))
		}
		ev.Msg("progress")
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				if p.term.tty {
					report()
					p.term.finish()
				}
				return
			case <-t.C:
				report()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// stats is one progress report.
type stats struct {
	producer.Progress
	recordsPerS, mbPerS float64
	percent             float64       // of the compressed bytes; -1 = unknown
	eta                 time.Duration // -1 = unknown
}

// measure computes rates, the share done and the time left. Both come
// from the compressed bytes downloaded against the export's compressed
// size, estimated from the parts opened so far (every part has its size
// once it is opened): known from the first seconds of a run, and steady
// while the parts are read.
func measure(pr producer.Progress, blobs bytesSource, elapsed time.Duration) stats {
	st := stats{Progress: pr, percent: -1, eta: -1}
	secs := elapsed.Seconds()
	if secs > 0 {
		st.recordsPerS = float64(pr.Records) / secs
		st.mbPerS = float64(pr.LineBytes) / 1e6 / secs
	}
	known, sized := blobs.KnownSizes()
	in := blobs.BytesDownloaded()
	switch {
	case pr.PartsTotal > 0 && pr.PartsDone == pr.PartsTotal:
		st.percent, st.eta = 100, 0
	case sized > 0 && known > 0 && in > 0:
		total := float64(known) + float64(pr.PartsTotal-sized)*float64(known)/float64(sized)
		st.percent = min(99.9, 100*float64(in)/total)
		left := max(0, total-float64(in))
		st.eta = time.Duration(float64(elapsed) * left / float64(in))
	}
	return st
}

// line is the live line of a terminal.
func (st stats) line() string {
	pct, eta := "  ?%", "?"
	if st.percent >= 0 {
		pct = fmt.Sprintf("%3.0f%%", st.percent)
	}
	if st.eta >= 0 {
		eta = st.eta.Round(time.Second).String()
	}
	// Most important first: a narrow terminal cuts the end.
	return fmt.Sprintf("%s  ETA %s  parts %d/%d  records %d (%.0f/s)  rejected %d  %.1f MB/s",
		pct, eta, st.PartsDone, st.PartsTotal, st.Records, st.recordsPerS, st.Rejected, st.mbPerS)
}

// watch is runner.Env.Watch: it reports the running snapshot w.
func (p *progress) watch(w runner.Watched, log zerolog.Logger) (stop func()) {
	return p.start(w, w, log)
}
