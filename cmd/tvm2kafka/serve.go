package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/runner"
	"github.com/tvm2kafka/tvm2kafka/source"
)

// minQuietInterval is the shortest TVM2KAFKA_INTERVAL that stays within
// the export API's 20 calls an hour when every run makes one call.
const minQuietInterval = 3 * time.Minute

func printServeUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: tvm2kafka serve [flags]")
	fmt.Fprintln(w, "\nTakes a snapshot at start and then every TVM2KAFKA_INTERVAL (with a jitter of up to 10 %),")
	fmt.Fprintln(w, "skipping unchanged exports, and serves /metrics, /healthz and /readyz on TVM2KAFKA_HTTP_ADDR.")
	fmt.Fprintln(w, "SIGTERM or SIGINT between runs: exit 0 at once; during a run: snapshot-abort, then exit 0.")
	fmt.Fprintln(w, "It takes the same settings as run:")
	fmt.Fprintln(w)
	printRunUsage(w)
}

// cmdServe runs snapshots on a schedule until SIGTERM or SIGINT.
func cmdServe(ctx context.Context, args []string, lookup lookupFunc, stdout, stderr io.Writer) int {
	started := time.Now()
	cfg, raw, term, code, done := loadCommand("serve", args, lookup, printServeUsage, stdout, stderr)
	if done {
		return code
	}
	// Binding the address is local: an address that cannot be bound is
	// bad configuration, reported before any network call.
	ln, err := net.Listen("tcp", cfg.Runs.HTTPAddr)
	if err != nil {
		return configError("serve", raw, fmt.Errorf("TVM2KAFKA_HTTP_ADDR: cannot listen on %q: %w", cfg.Runs.HTTPAddr, err), term, started)
	}
	log := newLogger(cfg, term)
	cfg.goMemLimit, cfg.goMemLimitSet = applyMemoryLimit(cfg.res)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sigctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal a second one ends the process at once.
	context.AfterFunc(sigctx, stop)

	s := &server{cfg: cfg, log: log, metrics: newMetrics(cfg.Runs.Interval), ready: newReadiness(cfg.exports), progress: newProgress(term, 10*time.Second)}
	return s.run(sigctx, ln, cancel)
}

// server is one `tvm2kafka serve` process.
type server struct {
	cfg      *config
	log      zerolog.Logger
	metrics  *metrics
	ready    *readiness
	progress *progress
}

func (s *server) run(ctx context.Context, ln net.Listener, fail context.CancelCauseFunc) int {
	logStart(s.log.With().Str("http_addr", ln.Addr().String()).Str("interval", s.cfg.Runs.Interval.String()).Logger(),
		s.cfg, "serve", "serve starting")
	if s.cfg.Runs.Interval < minQuietInterval {
		s.log.Warn().Str("interval", s.cfg.Runs.Interval.String()).
			Msg("TVM2KAFKA_INTERVAL is below 3m: the export API allows 20 calls an hour, runs will wait for the rate limiter")
	}

	httpSrv := &http.Server{
		Handler:           s.metrics.handler(s.ready, s.cfg.secretsSeen),
		ReadHeaderTimeout: 10 * time.Second,
	}
	httpErr := make(chan error, 1)
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
			fail(err) // a run in progress aborts
		}
	}()
	s.log.Info().Str("addr", ln.Addr().String()).Msg("http endpoint listening")
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
	}()

	// One limiter for the process: the export API's limits (per app and
	// tenant) hold across runs and across the exports of MDE_EXPORTS.
	env := runEnv{
		command:      "serve",
		progress:     s.progress,
		limiter:      source.NewRateLimiter(nil, source.ExportLimits()...),
		exportAnswer: s.metrics.exportAnswer,
	}
	var wg sync.WaitGroup
	for _, e := range s.cfg.exports {
		cfg, ready := s.cfg, s.ready.of(e.Name)
		log := s.log
		if len(s.cfg.exports) > 1 {
			cfg, log = s.cfg.forExport(e), s.log.With().Str("export", e.Name).Logger()
		}
		wg.Go(func() { s.schedule(ctx, cfg, env, ready, log) })
	}
	wg.Wait()
	select {
	case err := <-httpErr:
		s.log.Error().Err(err).Msg("http endpoint failed; serve stopped")
		return exitFailed
	default:
	}
	s.log.Info().Msg("serve stopped by signal")
	return exitOK
}

// schedule runs the snapshots of one export until ctx ends; the exports
// of MDE_EXPORTS each have their own schedule.
func (s *server) schedule(ctx context.Context, cfg *config, env runEnv, ready *exportReadiness, log zerolog.Logger) {
	for {
		s.metrics.begin()
		out := snapshot(ctx, cfg, env, log)
		s.metrics.observe(out, time.Now())
		ready.observe(out)
		if ctx.Err() != nil {
			return
		}
		next := nextRun(out, cfg.Runs.Interval, jitter(cfg.Runs.Interval))
		log.Info().Time("next_run", next).Str("last_result", string(out.Result)).Msg("next snapshot scheduled")
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// nextRun is when the run after out starts: interval (plus jitter) after
// out started; but a run refused because another run held the lease tries
// again as soon as that lease expires, if that is sooner — a predecessor
// killed with SIGKILL must not delay the feed by a whole interval.
func nextRun(out runner.Outcome, interval, jitter time.Duration) time.Time {
	next := out.Started.Add(interval + jitter)
	if le := out.Lease; le != nil {
		if expiry := le.Expires().Add(time.Second); expiry.Before(next) {
			next = expiry
		}
	}
	return next
}

// jitter is a random delay of up to a tenth of interval.
func jitter(interval time.Duration) time.Duration {
	n := int64(interval / 10)
	if n <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(n + 1))
}
