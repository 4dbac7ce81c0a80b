package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/producer"
	"github.com/tvm2kafka/tvm2kafka/schema"
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
	return snapshot(ctx, cfg, env, log).code
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
	o := outcome{result: resultFailed, code: exitUsage, err: err, started: started, duration: time.Since(started)}
	logSummary(log, raw["KAFKA_TOPIC"], raw["TVM2KAFKA_DRY_RUN"] == "true", o, 0)
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

// Results of a run: the summary line's result and the result label of
// tvm2kafka_snapshots_total.
const (
	resultComplete  = "complete"  // snapshot-end written on every partition
	resultAborted   = "aborted"   // snapshot-abort written after snapshot-start
	resultFailed    = "failed"    // failed before any marker was written
	resultUnchanged = "unchanged" // the topic already ends with this export
	resultSkipped   = "skipped"   // another run is publishing (lease)
)

// outcome is how one run ended.
type outcome struct {
	result string
	code   int // exit status of `run`
	err    error
	res    producer.Result
	// manifest is the export's answer (zero when the run ended before).
	manifest schema.Manifest
	// topicGeneratedTime is the generatedTime of the complete snapshot
	// the topic ends with after this run, when the run found out: ""
	// when unknown.
	topicGeneratedTime string
	started            time.Time
	duration           time.Duration
}

// snapshot takes one snapshot as configured: the code path of `run`,
// `serve` and `demo`. Every run ends with exactly one summary line.
func snapshot(ctx context.Context, cfg *config, env runEnv, log zerolog.Logger) (out outcome) {
	out.started = time.Now()
	runID := newRunID()
	out.res.RunID = runID
	log = log.With().Str("run_id", runID).Logger()
	logStart(log, cfg, env.command, "snapshot starting")
	for _, w := range cfg.warnings {
		log.Warn().Msg(w)
	}

	var bytesIn func() int64
	defer func() {
		out.duration = time.Since(out.started)
		var in int64
		if bytesIn != nil {
			in = bytesIn()
		}
		logSummary(log, cfg.kafka.Topic, cfg.Pipeline.DryRun, out, in)
	}()
	fail := func(err error, msg string) outcome {
		log.Error().Err(err).Msg(msg)
		out.result, out.code, out.err = resultFailed, exitFailed, err
		return out
	}

	httpc := env.httpClient
	if httpc == nil {
		httpc = newHTTPClient()
	}
	cred := cfg.cred
	cred.HTTPClient = httpc
	tokens, kind, err := source.NewTokenSource(cred)
	if err != nil {
		return fail(err, "credentials")
	}
	apiClient := httpc
	if env.exportAnswer != nil {
		apiClient = &http.Client{Transport: &answerCounter{base: httpc.Transport, count: env.exportAnswer}, Timeout: httpc.Timeout}
	}
	exports, err := source.NewExportClient(source.ExportConfig{
		BaseURL:       cfg.Azure.APIURL,
		Export:        cfg.Azure.Export,
		SASValidHours: cfg.Azure.SASValidHours,
		Tokens:        tokens,
		HTTPClient:    apiClient,
		Limiter:       env.limiter,
		Logger:        log,
	})
	if err != nil {
		return fail(err, "export client")
	}

	// Kafka first: a broker that cannot be reached must not cost one of
	// the export API's 20 calls an hour.
	var (
		pub                       wire.Sink
		partitions, dlqPartitions int
		k                         *wire.Kafka
		tbl                       *tableTopic
	)
	if cfg.Pipeline.DryRun {
		pub, partitions, dlqPartitions = wire.Discard(), cfg.kafka.TopicPartitions, cfg.kafka.TopicPartitions
		log.Warn().Int("partitions", partitions).Msg("dry run: records and markers are built and counted, then discarded; nothing is published and no broker is contacted")
		if cfg.kafka.TableTopic != "" {
			log.Warn().Str("table_topic", cfg.kafka.TableTopic).Msg("dry run: the table topic is neither read nor written")
		}
	} else {
		kcfg := cfg.kafka
		if kcfg.SASLMechanism == wire.SASLOAuthBearer {
			kts, err := source.ForScope(tokens, cfg.kafkaScope, "KAFKA_OAUTH_SCOPE")
			if err != nil {
				return fail(err, "kafka")
			}
			kcfg.OAuthToken, kcfg.OAuthScope = kts.TokenExpiry, cfg.kafkaScope
		}
		k, err = wire.NewKafka(kcfg, log)
		if err != nil {
			return fail(err, "kafka")
		}
		defer k.Close()
		tctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		n, created, err := k.EnsureTopic(tctx, cfg.kafka.Topic, cfg.kafka.TopicPartitions, cfg.kafka.TopicReplicationFactor)
		if err == nil && cfg.kafka.DLQTopic != "" {
			dlqPartitions, _, err = k.EnsureTopic(tctx, cfg.kafka.DLQTopic, cfg.kafka.TopicPartitions, cfg.kafka.TopicReplicationFactor)
		}
		cancel()
		if err != nil {
			if host, ok := source.NoSuchHost(err); ok {
				err = fmt.Errorf("KAFKA_BROKERS: the broker host %s does not exist (DNS: no such host): %w", host, err)
			}
			log.Error().Err(err).Strs("brokers", cfg.kafka.Brokers).Msg("kafka: cannot use the topic; nothing was published")
			out.result, out.code, out.err = resultFailed, exitFailed, err
			return out
		}
		log.Info().Str("topic", cfg.kafka.Topic).Int("partitions", n).Bool("created", created).Msg("kafka topic ready")
		pub, partitions = k, n
		if cfg.kafka.TableTopic != "" {
			tctx, cancel := context.WithTimeout(ctx, 45*time.Second)
			var code int
			tbl, code, err = openTable(tctx, cfg, k, log)
			cancel()
			if err != nil {
				out.result, out.code, out.err = resultFailed, code, err
				return out
			}
			defer tbl.close()
		}
	}

	log.Info().Str("auth", string(kind)).Str("api", cfg.Azure.APIURL).Msg("requesting export")
	manifest, err := exports.Manifest(ctx)
	if err != nil {
		return fail(err, "export API: no snapshot taken, no marker written")
	}
	out.manifest = manifest

	// The tail of the topic decides whether this export is published
	// (README, "Unchanged exports and concurrent runs"). The table is read
	// back meanwhile, and only used for a snapshot that is published.
	if tbl != nil {
		tbl.startLoad(ctx, manifest, runID, cfg.Pipeline.RetryMax, log)
	}
	if k != nil {
		if done := checkTail(ctx, k, cfg, manifest, partitions, log, &out); done {
			if tbl != nil {
				tbl.cancelLoad()
			}
			return out
		}
	}
	var observer producer.Observer
	if tbl != nil {
		if observer, err = tbl.loaded(); err != nil {
			return fail(err, "table topic: cannot read it back; nothing was published")
		}
	}

	blobs := source.NewBlobs(source.BlobConfig{
		HTTPClient:    httpc,
		Refresh:       exports.Manifest,
		GeneratedTime: manifest.GeneratedTime,
		MaxElapsed:    cfg.Pipeline.RetryMax,
		Logger:        log,
	})
	snap, err := producer.NewSnapshot(producer.SnapshotConfig{
		Manifest:        manifest,
		Topic:           cfg.kafka.Topic,
		DLQTopic:        cfg.kafka.DLQTopic,
		Partitions:      partitions,
		DLQPartitions:   dlqPartitions,
		RunID:           runID,
		Workers:         cfg.workers,
		MaxMessageBytes: cfg.kafka.MaxMessageBytes,
		Retryable:       source.IsRetryable,
		RetryMaxElapsed: cfg.Pipeline.RetryMax,
		Logger:          log,
		Observer:        observer,
	}, blobs, pub)
	if err != nil {
		return fail(err, "snapshot")
	}
	bytesIn = blobs.BytesDownloaded

	stopProgress := env.progress.start(snap, blobs, log)
	res, err := snap.Run(ctx)
	stopProgress()
	out.res = res
	switch {
	case err == nil:
		out.result, out.code = resultComplete, exitOK
		if !cfg.Pipeline.DryRun {
			out.topicGeneratedTime = manifest.GeneratedTime
		}
	case producer.IsComplete(err):
		// The snapshot is complete, its observer (the table topic) is
		// behind: exit 1 so that operators see it.
		out.result, out.code, out.err = resultComplete, exitFailed, err
		out.topicGeneratedTime = manifest.GeneratedTime
	case res.Aborted:
		out.result, out.code, out.err = resultAborted, exitFailed, err
	default:
		out.result, out.code, out.err = resultFailed, exitFailed, err
	}
	return out
}

// checkTail reads the newest message of every partition and applies the
// rules for unchanged exports and concurrent runs. It reports done when
// the run must not publish; out then holds the result.
func checkTail(ctx context.Context, k *wire.Kafka, cfg *config, m schema.Manifest, partitions int, log zerolog.Logger, out *outcome) (done bool) {
	began := time.Now()
	tail, err := k.Tail(ctx, cfg.kafka.Topic, partitions)
	if err != nil {
		log.Error().Err(err).Msg("kafka: cannot read the newest message of every partition; nothing was published")
		out.result, out.code, out.err = resultFailed, exitFailed, err
		return true
	}
	log.Debug().Int("partitions", partitions).Int("fetches", tail.Fetches).Int("records_decoded", tail.Records).
		Dur("took", time.Since(began)).Msg("topic tail read")
	if _, gen, ok := tail.Complete(); ok {
		out.topicGeneratedTime = gen
	}
	now := time.Now()
	v := decide(tail, m, now, cfg.Runs.Lease, cfg.Runs.Force)
	for _, d := range v.dead {
		log.Warn().Str("other_run_id", d.RunID).Time("other_last_write", d.LastWrite).Ints("partitions", d.Partitions).
			Str("lease", cfg.Runs.Lease.String()).Msg("an unfinished run's lease has expired: treating it as dead")
	}
	switch {
	case v.unchanged && !cfg.Runs.Force:
		log.Info().Str("export", m.Export).Str("generated_time", m.GeneratedTime).Str("topic", cfg.kafka.Topic).
			Int("partitions", partitions).Msg("snapshot unchanged")
		out.result, out.code = resultUnchanged, exitOK
		return true
	case v.live != nil && !cfg.Runs.Force:
		err := &leaseError{run: *v.live, topic: cfg.kafka.Topic, age: now.Sub(v.live.LastWrite), lease: cfg.Runs.Lease}
		log.Error().Str("other_run_id", v.live.RunID).Time("other_last_write", v.live.LastWrite).Ints("partitions", v.live.Partitions).
			Str("lease", cfg.Runs.Lease.String()).Msg("another run is publishing to the topic; nothing published")
		out.result, out.code, out.err = resultSkipped, exitFailed, err
		return true
	case v.unchanged:
		log.Info().Str("generated_time", m.GeneratedTime).Msg("export unchanged; publishing it again (TVM2KAFKA_FORCE)")
	case v.live != nil:
		log.Warn().Str("other_run_id", v.live.RunID).Time("other_last_write", v.live.LastWrite).
			Msg("another run is publishing to the topic; publishing anyway (TVM2KAFKA_FORCE)")
	}
	return false
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
func logSummary(log zerolog.Logger, topic string, dryRun bool, out outcome, bytesIn int64) {
	secs := out.duration.Seconds()
	res := out.res
	ev := log.Info()
	if out.code != exitOK {
		ev = log.Error()
	}
	if out.err != nil {
		ev = ev.Err(out.err)
	}
	ev.Str("result", out.result).
		Bool("complete", out.result == resultComplete && !dryRun).
		Bool("unchanged", out.result == resultUnchanged).
		Bool("dry_run", dryRun).
		Int("exit_code", out.code).
		Str("topic", topic).
		Str("generated_time", out.manifest.GeneratedTime).
		Int64("records", res.Records).
		Int64("rejected", res.Rejected).
		Int("parts", len(out.manifest.Parts)).
		Int64("bytes_in", bytesIn).
		Int64("bytes_out", res.LineBytes).
		Dur("duration", out.duration).
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

// newRunID returns a random UUID (version 4).
func newRunID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Errorf("crypto/rand: %w", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newHTTPClient is the client of every call to Entra ID, the Defender API
// and Blob storage: it honours HTTPS_PROXY / NO_PROXY.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment
	t.MaxIdleConnsPerHost = 32
	return &http.Client{Transport: t}
}
