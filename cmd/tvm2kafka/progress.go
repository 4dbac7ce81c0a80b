package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/tvm2kafka/tvm2kafka/producer"
)

// progress reports a running snapshot: a live line when stderr is a
// terminal, otherwise a structured log line every interval.
type progress struct {
	out      io.Writer
	tty      bool
	interval time.Duration
}

func newProgress(stderr io.Writer, interval time.Duration) *progress {
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	if tty {
		interval = 250 * time.Millisecond
	}
	return &progress{out: stderr, tty: tty, interval: interval}
}

// progressSource is what progress reads: the snapshot and the blob reader.
type progressSource interface {
	Progress() producer.Progress
}

type bytesSource interface {
	BytesDownloaded() int64
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
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				if p.tty {
					fmt.Fprintf(p.out, "\r\033[K%s\n", p.line(snap.Progress(), blobs.BytesDownloaded(), time.Since(began)))
				}
				return
			case <-t.C:
				pr, elapsed := snap.Progress(), time.Since(began)
				if p.tty {
					fmt.Fprintf(p.out, "\r\033[K%s", p.line(pr, blobs.BytesDownloaded(), elapsed))
					continue
				}
				log.Info().Int("parts_done", pr.PartsDone).Int("parts", pr.PartsTotal).
					Int64("records", pr.Records).Int64("rejected", pr.Rejected).
					Float64("mb_per_s", round1(float64(pr.LineBytes)/1e6/elapsed.Seconds())).
					Str("eta", eta(pr, elapsed)).Msg("progress")
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (p *progress) line(pr producer.Progress, in int64, elapsed time.Duration) string {
	secs := elapsed.Seconds()
	return fmt.Sprintf("parts %d/%d  records %d  rejected %d  %.1f MB/s (%.1f MB/s compressed)  ETA %s",
		pr.PartsDone, pr.PartsTotal, pr.Records, pr.Rejected,
		float64(pr.LineBytes)/1e6/secs, float64(in)/1e6/secs, eta(pr, elapsed))
}

// eta extrapolates from the parts done; "?" until one part is.
func eta(pr producer.Progress, elapsed time.Duration) string {
	if pr.PartsDone == 0 || pr.PartsTotal == 0 {
		return "?"
	}
	left := time.Duration(float64(elapsed) * float64(pr.PartsTotal-pr.PartsDone) / float64(pr.PartsDone))
	return left.Round(time.Second).String()
}
