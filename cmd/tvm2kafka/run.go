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

	"github.com/tvm2kafka/tvm2kafka/producer"
	"github.com/tvm2kafka/tvm2kafka/source"
)

func printUsage(w io.Writer) {
	fmt.Fprint(w, `tvm2kafka streams Microsoft Defender Vulnerability Management exports into Kafka.

Usage:
  tvm2kafka run  [flags]   take one snapshot of the export and publish it, then exit
  tvm2kafka demo [flags]   the same pipeline against an embedded broker, Defender API and
                           blob store with a synthetic export; reads the topic back and verifies it
  tvm2kafka help           this text; "tvm2kafka run --help" lists every setting

Exit status: 0 snapshot complete, 1 snapshot failed (abort markers written where start
markers were), 2 bad configuration or usage (reported before any network call).
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
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		printRunUsage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "tvm2kafka: unknown command %q (commands: run, demo, help)\nRun 'tvm2kafka help' for usage.\n", args[0])
	return exitUsage
}

func cmdRun(ctx context.Context, args []string, lookup lookupFunc, stdout, stderr io.Writer) int {
	started := time.Now()
	fs, vals := newFlagSet("run")
	if code, done := parseFlags(fs, args, printRunUsage, stdout, stderr); done {
		return code
	}
	term := newTerminal(stderr)
	raw, err := resolve(fs, vals, lookup)
	var cfg *config
	if err == nil {
		cfg, err = parseConfig(raw)
	}
	if err != nil {
		return configError(raw, err, term, started)
	}
	log := newLogger(cfg, term)
	for _, w := range cfg.warnings {
		log.Warn().Msg(w)
	}
	prof, err := startProfiles(cfg.cpuProfile, cfg.memProfile)
	if err != nil {
		return configError(raw, err, term, started)
	}
	defer prof.stop(log)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, code := snapshot(ctx, cfg, runEnv{progress: newProgress(term, 10*time.Second)}, log)
	return code
}

// configError reports a configuration error (exit 2) in the configured
// log format (json unless LOG_FORMAT=console), with the summary line that
// ends every run, before any network call.
func configError(raw rawValues, err error, out io.Writer, started time.Time) int {
	if raw == nil {
		raw = defaultValues()
	}
	log := fallbackLogger(raw, out)
	if fallbackFormat(raw) == "console" {
		fmt.Fprintf(out, "tvm2kafka run: configuration error:\n%v\n(see tvm2kafka run --help)\n", redactConfigError(raw, err))
	} else {
		log.Error().Str("error", redactConfigError(raw, err)).Msg("configuration error")
	}
	s := newSummary(raw["KAFKA_TOPIC"], raw["TVM2KAFKA_DRY_RUN"] == "true")
	s.started = started
	s.end(log, exitUsage, err)
	return exitUsage
}

// runEnv is what differs between `run` and `demo`.
type runEnv struct {
	httpClient *http.Client // nil: a proxy-aware default
	progress   *progress    // nil: none
}

// snapshot takes one snapshot as configured: the code path of both `run`
// and `demo`. It returns the result and the exit status, and ends with
// the run's summary line, whatever happens.
func snapshot(ctx context.Context, cfg *config, env runEnv, log zerolog.Logger) (res producer.Result, code int) {
	runID := newRunID()
	log = log.With().Str("run_id", runID).Logger()
	sum := newSummary(cfg.kafka.Topic, cfg.dryRun)
	var runErr error
	defer func() { sum.res = res; sum.end(log, code, runErr) }()
	fail := func(err error, msg string) (producer.Result, int) {
		log.Error().Err(err).Msg(msg)
		runErr = err
		return producer.Result{}, exitFailed
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
	exports, err := source.NewExportClient(source.ExportConfig{
		BaseURL:       cfg.apiURL,
		Export:        cfg.export,
		SASValidHours: cfg.sasHours,
		Tokens:        tokens,
		HTTPClient:    httpc,
		Logger:        log,
	})
	if err != nil {
		return fail(err, "export client")
	}

	// Kafka first: a broker that cannot be reached must not cost one of
	// the export API's 20 calls an hour.
	var (
		pub                       producer.Publisher
		partitions, dlqPartitions int
	)
	if cfg.dryRun {
		pub, partitions, dlqPartitions = producer.Discard(), cfg.kafka.TopicPartitions, cfg.kafka.TopicPartitions
		log.Warn().Int("partitions", partitions).Msg("dry run: records and markers are built and counted, then discarded; nothing is published and no broker is contacted")
	} else {
		kcfg := cfg.kafka
		if kcfg.SASLMechanism == producer.SASLOAuthBearer {
			kts, err := source.ForScope(tokens, cfg.kafkaScope, "KAFKA_OAUTH_SCOPE")
			if err != nil {
				return fail(err, "kafka")
			}
			kcfg.OAuthToken, kcfg.OAuthScope = kts.TokenExpiry, cfg.kafkaScope
		}
		k, err := producer.NewKafka(kcfg, log)
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
			runErr = err
			return producer.Result{}, exitFailed
		}
		log.Info().Str("topic", cfg.kafka.Topic).Int("partitions", n).Bool("created", created).Msg("kafka topic ready")
		pub, partitions = k, n
	}

	log.Info().Str("auth", kind).Str("api", cfg.apiURL).Msg("requesting export")
	manifest, err := exports.Manifest(ctx)
	if err != nil {
		return fail(err, "export API: no snapshot taken, no marker written")
	}
	sum.generatedTime, sum.parts = manifest.GeneratedTime, len(manifest.Parts)

	blobs := source.NewBlobs(source.BlobConfig{
		HTTPClient:    httpc,
		Refresh:       exports.Manifest,
		GeneratedTime: manifest.GeneratedTime,
		MaxElapsed:    cfg.retryMax,
		Logger:        log,
	})
	sum.bytesIn = blobs.BytesDownloaded
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
		RetryMaxElapsed: cfg.retryMax,
		Logger:          log,
	}, blobs, pub)
	if err != nil {
		return fail(err, "snapshot")
	}

	stopProgress := env.progress.start(snap, blobs, log)
	res, err = snap.Run(ctx)
	stopProgress()
	if err != nil {
		runErr = err
		return res, exitFailed
	}
	return res, exitOK
}

// summary is the content of the one `snapshot summary` line that ends
// every run, complete or not, from a configuration error on.
type summary struct {
	started       time.Time
	topic         string
	dryRun        bool
	generatedTime string // "" until the export API answered
	parts         int
	bytesIn       func() int64 // nil until blobs are read
	res           producer.Result
}

func newSummary(topic string, dryRun bool) *summary {
	return &summary{started: time.Now(), topic: topic, dryRun: dryRun}
}

// end writes the summary line: info for exit status 0, error otherwise.
// complete is true only when snapshot-end was written on every partition
// (never in a dry run, which publishes nothing).
func (s *summary) end(log zerolog.Logger, code int, err error) {
	elapsed := time.Since(s.started)
	secs := elapsed.Seconds()
	var in int64
	if s.bytesIn != nil {
		in = s.bytesIn()
	}
	ev := log.Info()
	if code != exitOK {
		ev = log.Error()
		if err != nil {
			ev = ev.Err(err)
		}
	}
	ev.Bool("complete", code == exitOK && !s.dryRun).
		Bool("dry_run", s.dryRun).
		Int("exit_code", code).
		Str("topic", s.topic).
		Str("generated_time", s.generatedTime).
		Int64("records", s.res.Records).
		Int64("rejected", s.res.Rejected).
		Int("parts", s.parts).
		Int64("bytes_in", in).
		Int64("bytes_out", s.res.LineBytes).
		Dur("duration", elapsed).
		Float64("records_per_s", round1(float64(s.res.Records)/secs)).
		Float64("mb_per_s", round1(float64(s.res.LineBytes)/1e6/secs)).
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
