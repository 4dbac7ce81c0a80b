package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
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
		return cmdRun(ctx, args[1:], lookup, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		printRunUsage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "tvm2kafka: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return exitUsage
}

// loadConfig parses flags and environment into a validated config.
func loadConfig(args []string, lookup lookupFunc, stderr io.Writer) (*config, int) {
	fs, vals := newFlagSet("run", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK
		}
		return nil, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tvm2kafka run: unexpected argument %q\n", fs.Arg(0))
		return nil, exitUsage
	}
	raw, err := resolve(fs, vals, lookup)
	if err == nil {
		var cfg *config
		if cfg, err = parseConfig(raw); err == nil {
			return cfg, exitOK
		}
	}
	fmt.Fprintf(stderr, "tvm2kafka run: configuration error:\n%v\n(see tvm2kafka run --help)\n", err)
	return nil, exitUsage
}

func cmdRun(ctx context.Context, args []string, lookup lookupFunc, stderr io.Writer) int {
	cfg, code := loadConfig(args, lookup, stderr)
	if cfg == nil {
		return code
	}
	log := newLogger(cfg, stderr)
	prof, err := startProfiles(cfg.cpuProfile, cfg.memProfile)
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka run: configuration error:\n%v\n", err)
		return exitUsage
	}
	defer prof.stop(log)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := runEnv{progress: newProgress(stderr, 10*time.Second)}
	_, code = snapshot(ctx, cfg, env, log)
	return code
}

// runEnv is what differs between `run` and `demo`.
type runEnv struct {
	httpClient *http.Client // nil: a proxy-aware default
	progress   *progress    // nil: none
}

// snapshot takes one snapshot as configured: the code path of both `run`
// and `demo`. It returns the result and the exit status.
func snapshot(ctx context.Context, cfg *config, env runEnv, log zerolog.Logger) (producer.Result, int) {
	started := time.Now()
	runID := newRunID()
	log = log.With().Str("run_id", runID).Logger()

	httpc := env.httpClient
	if httpc == nil {
		httpc = newHTTPClient()
	}
	cred := cfg.cred
	cred.HTTPClient = httpc
	tokens, kind, err := source.NewTokenSource(cred)
	if err != nil {
		log.Error().Err(err).Msg("credentials")
		return producer.Result{}, exitFailed
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
		log.Error().Err(err).Msg("export client")
		return producer.Result{}, exitFailed
	}

	// Kafka first: a broker that cannot be reached must not cost one of
	// the export API's 20 calls an hour.
	var (
		pub                       producer.Publisher
		partitions, dlqPartitions int
	)
	if cfg.dryRun {
		pub, partitions, dlqPartitions = producer.Discard(), cfg.kafka.TopicPartitions, cfg.kafka.TopicPartitions
		log.Warn().Msg("dry run: nothing is published")
	} else {
		k, err := producer.NewKafka(cfg.kafka, log)
		if err != nil {
			log.Error().Err(err).Msg("kafka")
			return producer.Result{}, exitFailed
		}
		defer k.Close()
		tctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		n, created, err := k.EnsureTopic(tctx, cfg.kafka.Topic, cfg.kafka.TopicPartitions, cfg.kafka.TopicReplicationFactor)
		if err == nil && cfg.kafka.DLQTopic != "" {
			dlqPartitions, _, err = k.EnsureTopic(tctx, cfg.kafka.DLQTopic, cfg.kafka.TopicPartitions, cfg.kafka.TopicReplicationFactor)
		}
		cancel()
		if err != nil {
			log.Error().Err(err).Strs("brokers", cfg.kafka.Brokers).Msg("kafka: cannot use the topic; nothing was published")
			return producer.Result{}, exitFailed
		}
		log.Info().Str("topic", cfg.kafka.Topic).Int("partitions", n).Bool("created", created).Msg("kafka topic ready")
		pub, partitions = k, n
	}

	log.Info().Str("auth", kind).Str("api", cfg.apiURL).Msg("requesting export")
	manifest, err := exports.Manifest(ctx)
	if err != nil {
		log.Error().Err(err).Msg("export API: no snapshot taken, no marker written")
		return producer.Result{}, exitFailed
	}

	blobs := source.NewBlobs(source.BlobConfig{
		HTTPClient:    httpc,
		Refresh:       exports.Manifest,
		GeneratedTime: manifest.GeneratedTime,
		MaxElapsed:    cfg.retryMax,
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
		RetryMaxElapsed: cfg.retryMax,
		Logger:          log,
	}, blobs, pub)
	if err != nil {
		log.Error().Err(err).Msg("snapshot")
		return producer.Result{}, exitFailed
	}

	stopProgress := env.progress.start(snap, blobs, log)
	res, err := snap.Run(ctx)
	stopProgress()

	elapsed := time.Since(started)
	secs := elapsed.Seconds()
	ev := log.Info()
	if err != nil {
		ev = log.Error().Err(err)
	}
	ev.Bool("complete", err == nil).
		Int64("records", res.Records).
		Int64("rejected", res.Rejected).
		Int("parts", len(manifest.Parts)).
		Int64("bytes_in", blobs.BytesDownloaded()).
		Int64("bytes_out", res.LineBytes).
		Str("duration", elapsed.Round(time.Millisecond).String()).
		Float64("records_per_s", round1(float64(res.Records)/secs)).
		Float64("mb_per_s", round1(float64(res.LineBytes)/1e6/secs)).
		Float64("peak_rss_mb", round1(float64(peakRSS())/1e6)).
		Msg("snapshot summary")
	if err != nil {
		return res, exitFailed
	}
	return res, exitOK
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
