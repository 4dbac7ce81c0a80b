package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/runner"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/source"
)

func printUsage(w io.Writer) {
	fmt.Fprint(w, `tvm2kafka streams Microsoft Defender Vulnerability Management exports into Kafka.

Usage:
  tvm2kafka run   [flags]  take one snapshot of the export and publish it, then exit
  tvm2kafka serve [flags]  take a snapshot at start and then every TVM2KAFKA_INTERVAL, with an
                           HTTP endpoint for Prometheus (/metrics) and probes (/healthz, /readyz)
  tvm2kafka demo  [flags]  the same pipeline against an embedded broker, Defender API and
                           blob store with a synthetic export; reads the topic back and verifies it
  tvm2kafka verify [flags] reports the newest snapshot in the topic, partition by partition;
                           exit 0 only when it is complete (a cron / monitoring check)
  tvm2kafka version        the version, the Go version and the commit
  tvm2kafka help           this text; "tvm2kafka run --help" lists every setting

Exit status: 0 snapshot complete or export unchanged, 1 snapshot failed (abort markers
written where start markers were) or another run is publishing, 2 bad configuration or
usage (reported before any network call). serve exits 0 on SIGTERM/SIGINT.
`)
}

// run is the whole program; main only exits with its result.
func run(ctx context.Context, args []string, lookup lookupFunc, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], lookup, stdout, stderr)
	case "serve":
		return cmdServe(ctx, args[1:], lookup, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "verify":
		return cmdVerify(ctx, args[1:], lookup, stdout, stderr)
	case "version", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		printRunUsage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "tvm2kafka: unknown command %q (commands: run, serve, demo, verify, version, help)\nRun 'tvm2kafka help' for usage.\n", args[0])
	return exitUsage
}

// loadCommand parses the flags and environment of a command (run, serve)
// into a validated config, with the terminal its logs share with the
// progress line. done tells the command to stop with code: help was
// printed, or a usage or configuration error was reported (exit 2, before
// any network call).
func loadCommand(name string, args []string, lookup lookupFunc, usage func(io.Writer), stdout, stderr io.Writer) (cfg *config, raw rawValues, term *terminal, code int, done bool) {
	started := time.Now()
	raw, code, done, err := parseCommandLine(name, settings(), args, lookup, usage, stdout, stderr)
	if done {
		return nil, nil, nil, code, true
	}
	term = newTerminal(stderr)
	if err == nil {
		cfg, err = parseConfig(raw)
	}
	if err != nil {
		return nil, raw, term, configError(name, raw, err, term, started), true
	}
	return cfg, raw, term, exitOK, false
}

func cmdRun(ctx context.Context, args []string, lookup lookupFunc, stdout, stderr io.Writer) int {
	started := time.Now()
	cfg, raw, term, code, done := loadCommand("run", args, lookup, printRunUsage, stdout, stderr)
	if done {
		return code
	}
	if len(cfg.exports) > 1 {
		return configError("run", raw, usagef("MDE_EXPORTS: run takes one export (MDE_EXPORT); several are for serve, or one run per export"), term, started)
	}
	log := newLogger(cfg, term)
	prof, err := startProfiles(cfg.Pipeline.CPUProfile, cfg.Pipeline.MemProfile)
	if err != nil {
		return configError("run", raw, err, term, started)
	}
	defer prof.stop(log)
	cfg.goMemLimit, cfg.goMemLimitSet = applyMemoryLimit(cfg.res)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := runEnv{command: "run", progress: newProgress(term, 10*time.Second)}
	return exitCode(snapshot(ctx, cfg, env, log))
}

// configError reports a configuration error (exit 2) in the configured
// log format (json unless LOG_FORMAT=console), with the summary line that
// ends every run, before any network call.
func configError(name string, raw rawValues, err error, out io.Writer, started time.Time) int {
	if raw == nil {
		raw = defaultValues()
	}
	log := fallbackLogger(raw, out)
	if fallbackFormat(raw) == "console" {
		fmt.Fprintf(out, "tvm2kafka %s: configuration error:\n%v\n(see tvm2kafka %s --help)\n", name, redactConfigError(raw, err), name)
	} else {
		log.Error().Str("error", redactConfigError(raw, err)).Msg("configuration error")
	}
	o := runner.Outcome{Result: runner.Failed, Err: err, Started: started, Duration: time.Since(started)}
	logSummary(log, raw["KAFKA_TOPIC"], raw["TVM2KAFKA_DRY_RUN"] == "true", o, exitUsage)
	return exitUsage
}

// runEnv is what differs between `run`, `serve` and `demo`.
type runEnv struct {
	command    string       // logged on a run's first line
	httpClient *http.Client // nil: a proxy-aware default
	progress   *progress    // nil: none
	// limiter is the export API's rate limiter; nil: one for this run
	// only. serve passes one for the whole process.
	limiter *source.RateLimiter
	// exportAnswer, when set, is told the status code of every answer
	// of the export API ("error" when there was none).
	exportAnswer func(code string)
}

// snapshot takes one snapshot as configured (runner.Run): the code path
// of `run`, `serve` and `demo`. Every run ends with exactly one summary
// line.
func snapshot(ctx context.Context, cfg *config, env runEnv, log zerolog.Logger) runner.Outcome {
	httpc := env.httpClient
	if httpc == nil {
		httpc = newHTTPClient()
	}
	runLog := log
	out := runner.Run(ctx, cfg.runner(), runner.Env{
		Log:          log,
		HTTPClient:   httpc,
		Limiter:      env.limiter,
		ExportAnswer: env.exportAnswer,
		Started: func(l zerolog.Logger) {
			runLog = l
			logStart(l, cfg, env.command, "snapshot starting")
			for _, w := range cfg.warnings {
				l.Warn().Msg(w)
			}
		},
		Watch: env.progress.watch,
	})
	logSummary(runLog, cfg.kafka.Topic, cfg.Pipeline.DryRun, out, exitCode(out))
	return out
}

// exitCode is the exit status of `run` after out: 0 for a complete
// snapshot (its table topic, if any, up to date) and for an unchanged
// export, 2 for a table topic that cannot serve as one (configuration),
// 1 otherwise.
func exitCode(out runner.Outcome) int {
	var pe *wire.PolicyError
	switch {
	case errors.As(out.Err, &pe):
		return exitUsage
	case out.Result == runner.Unchanged, out.Result == runner.Complete && out.Err == nil:
		return exitOK
	}
	return exitFailed
}

// logStart writes the first log line of a run or of serve: the version
// and the effective settings, secrets redacted.
func logStart(log zerolog.Logger, cfg *config, command, msg string) {
	v := currentVersion()
	log.Info().Str("version", v.Version).Str("go_version", v.GoVersion).Str("revision", v.Revision).
		Str("command", command).Interface("settings", cfg.effective).
		Int("workers", cfg.workers).Bool("workers_auto", cfg.workersAuto).Int("gomaxprocs", cfg.res.procs).
		Int64("memory_limit_bytes", cfg.res.memoryLimit()).
		Int64("gomemlimit_bytes", cfg.goMemLimit).Bool("gomemlimit_from_container", cfg.goMemLimitSet).Msg(msg)
}

// logSummary writes the one `snapshot summary` line that ends every run,
// complete or not, from a configuration error on: info for exit status 0,
// error otherwise. complete is true only when snapshot-end was written on
// every partition (never in a dry run, which publishes nothing).
func logSummary(log zerolog.Logger, topic string, dryRun bool, out runner.Outcome, code int) {
	secs := out.Duration.Seconds()
	res := out.Res
	ev := log.Info()
	if code != exitOK {
		ev = log.Error()
	}
	if out.Err != nil {
		ev = ev.Err(out.Err)
	}
	ev.Str("result", string(out.Result)).
		Bool("complete", out.Result == runner.Complete && !dryRun).
		Bool("unchanged", out.Result == runner.Unchanged).
		Bool("dry_run", dryRun).
		Int("exit_code", code).
		Str("topic", topic).
		Str("generated_time", out.Manifest.GeneratedTime).
		Int64("records", res.Records).
		Int64("rejected", res.Rejected).
		Int64("duplicateKeys", out.DuplicateKeys).
		Int64("valuesNotJSON", res.ValuesNotJSON).
		Int64("valuesMistyped", res.ValuesMistyped).
		Int("parts", len(out.Manifest.Parts)).
		Int64("bytes_in", out.BytesIn).
		Int64("bytes_out", res.LineBytes).
		Dur("duration", out.Duration).
		Float64("records_per_s", round1(float64(res.Records)/secs)).
		Float64("mb_per_s", round1(float64(res.LineBytes)/1e6/secs)).
		Float64("peak_rss_mb", round1(float64(peakRSS())/1e6)).
		Msg("snapshot summary")
}

func round1(f float64) float64 {
	if f != f || f > 1e15 {
		return 0
	}
	return float64(int64(f*10+0.5)) / 10
}

// newHTTPClient is the client of every call to Entra ID, the Defender API
// and Blob storage: it honours HTTPS_PROXY / NO_PROXY.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}
