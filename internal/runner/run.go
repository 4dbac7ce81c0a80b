package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/names"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/producer"
	"github.com/tvm2kafka/tvm2kafka/registry"
	"github.com/tvm2kafka/tvm2kafka/schema"
	"github.com/tvm2kafka/tvm2kafka/source"
)

// Result is how a run ended: the summary line's result and the result
// label of tvm2kafka_snapshots_total.
type Result string

// The results of a run.
const (
	Complete  Result = "complete"  // snapshot-end written on every partition
	Aborted   Result = "aborted"   // snapshot-abort written after snapshot-start
	Failed    Result = "failed"    // failed before any marker was written
	Unchanged Result = "unchanged" // the topic already ends with this export
	Skipped   Result = "skipped"   // another run is publishing (lease)
)

// Results lists every Result, in the order of the metrics' series.
func Results() []Result { return []Result{Complete, Aborted, Failed, Unchanged, Skipped} }

// Config is everything one run needs, already validated.
type Config struct {
	// Credential reaches the Defender API (and, with OAUTHBEARER, the
	// brokers: KafkaScope is then the scope of their tokens).
	Credential source.CredentialConfig
	KafkaScope string
	// APIURL, Export and SASValidHours (0: not sent) are the export API's.
	APIURL, Export string
	SASValidHours  int
	// Kafka is the Kafka side: brokers, TLS, SASL, the topics (Topic,
	// DLQTopic, TableTopic) and how created topics are made.
	Kafka wire.Config
	// DryRun reads and frames everything and publishes nothing.
	DryRun bool
	// CloudEvents adds the CloudEvents headers to records and markers;
	// Tenant names the tenant in their ce_source ("": the default one).
	CloudEvents bool
	Tenant      string
	// ValueFormat is the records' value (producer.ValueRaw, ValueJSON,
	// ValueAvro, ValueJSONSchema); Registry is where the typed formats'
	// schemas are registered (nil for the others).
	ValueFormat string
	Registry    *registry.Config
	// Workers is the number of parts processed at once.
	Workers int
	// RetryMax bounds the retries of a part's reads and of a write.
	RetryMax time.Duration
	// Lease is how long an unfinished run's newest message keeps other
	// runs off the topic; Force publishes anyway (and an unchanged export).
	Lease time.Duration
	Force bool
	// Names names the settings behind the fields in messages
	// ("runner.Lease", "wire.Brokers", …); Kafka.Names and the libraries'
	// configs get it too.
	Names names.Func
}

// Env is what differs between the commands that run snapshots.
type Env struct {
	// Log receives the run's lines; Run adds the run_id.
	Log zerolog.Logger
	// HTTPClient carries every call to Entra ID, the API and the blobs.
	HTTPClient *http.Client
	// Limiter is the export API's rate limiter; nil: one for this run.
	// A process that takes several snapshots passes one for all of them.
	Limiter *source.RateLimiter
	// ExportAnswer, when set, is told the status code of every answer of
	// the export API ("error" when there was none).
	ExportAnswer func(code string)
	// Started, when set, is called with the run's logger before the run
	// logs anything (the first line of a run carries the settings).
	Started func(log zerolog.Logger)
	// Watch, when set, is called when the parts start being read; the
	// function it returns is called when the snapshot ends.
	Watch func(w Watched, log zerolog.Logger) (stop func())
}

// Watched is what a running snapshot shows of itself.
type Watched interface {
	// Progress is the snapshot's counters so far.
	Progress() producer.Progress
	// BytesDownloaded is the compressed bytes read so far; KnownSizes the
	// compressed size of the parts opened so far and their number.
	BytesDownloaded() int64
	KnownSizes() (bytes int64, parts int)
}

// Outcome is how one run ended.
type Outcome struct {
	Result Result
	// Err is why the run did not complete, or why its table is behind
	// (Result Complete with a *producer.CompleteError).
	Err error
	// Res holds the counts; Res.RunID is always set.
	Res producer.Result
	// Manifest is the export's answer (zero when the run ended before).
	Manifest schema.Manifest
	// TopicGeneratedTime is the generatedTime of the complete snapshot
	// the topic ends with after this run, when the run found out.
	TopicGeneratedTime string
	// Lease is the run that held the topic (Result Skipped).
	Lease *LeaseError
	// DuplicateKeys counts the lines whose natural key an earlier line of
	// the snapshot had (known with a table topic only: it keeps the keys).
	DuplicateKeys int64
	// BytesIn is the compressed bytes downloaded.
	BytesIn  int64
	Started  time.Time
	Duration time.Duration
}

// Run takes one snapshot as configured: the Kafka topics first (a broker
// that cannot be reached costs no export API call), then the export's
// manifest, the topic's tail (unchanged exports and leases) while the
// table topic is read back, then the snapshot itself.
func Run(ctx context.Context, cfg Config, env Env) (out Outcome) {
	out.Started = time.Now()
	runID := newRunID()
	out.Res.RunID = runID
	log := env.Log.With().Str("run_id", runID).Logger()
	if env.Started != nil {
		env.Started(log)
	}
	var bytesIn func() int64
	defer func() {
		out.Duration = time.Since(out.Started)
		if bytesIn != nil {
			out.BytesIn = bytesIn()
		}
	}()
	fail := func(err error, msg string) Outcome {
		log.Error().Err(err).Msg(msg)
		out.Result, out.Err = Failed, err
		return out
	}

	httpc := env.HTTPClient
	if httpc == nil {
		httpc = http.DefaultClient
	}
	cred := cfg.Credential
	cred.HTTPClient = httpc
	tokens, kind, err := source.NewTokenSource(cred)
	if err != nil {
		return fail(err, "credentials")
	}
	apiClient := httpc
	if env.ExportAnswer != nil {
		apiClient = &http.Client{Transport: &answerCounter{base: httpc.Transport, count: env.ExportAnswer}, Timeout: httpc.Timeout}
	}
	exports, err := source.NewExportClient(source.ExportConfig{
		BaseURL:       cfg.APIURL,
		Export:        cfg.Export,
		SASValidHours: cfg.SASValidHours,
		Tokens:        tokens,
		HTTPClient:    apiClient,
		Limiter:       env.Limiter,
		Logger:        log,
		Names:         cfg.Names,
	})
	if err != nil {
		return fail(err, "export client")
	}

	// Kafka first: a broker that cannot be reached must not cost one of
	// the export API's 20 calls an hour.
	var (
		sink                      wire.Sink
		partitions, dlqPartitions int
		k                         *wire.Kafka
		tbl                       *tableTopic
	)
	if cfg.DryRun {
		sink, partitions, dlqPartitions = wire.Discard(), cfg.Kafka.TopicPartitions, cfg.Kafka.TopicPartitions
		log.Warn().Int("partitions", partitions).Msg("dry run: records and markers are built and counted, then discarded; nothing is published and no broker is contacted")
		if cfg.Kafka.TableTopic != "" {
			log.Warn().Str("table_topic", cfg.Kafka.TableTopic).Msg("dry run: the table topic is neither read nor written")
		}
	} else {
		kcfg := cfg.Kafka
		if kcfg.SASLMechanism == wire.SASLOAuthBearer {
			kts, err := source.ForScope(tokens, cfg.KafkaScope, cfg.Names.Of("wire.OAuthScope"))
			if err != nil {
				return fail(err, "kafka")
			}
			kcfg.OAuthToken, kcfg.OAuthScope = kts.TokenExpiry, cfg.KafkaScope
		}
		k, err = wire.NewKafka(kcfg, log)
		if err != nil {
			return fail(err, "kafka")
		}
		defer k.Close()
		tctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		n, created, err := k.EnsureTopic(tctx, cfg.Kafka.Topic, cfg.Kafka.TopicPartitions, cfg.Kafka.TopicReplicationFactor)
		if err == nil && cfg.Kafka.DLQTopic != "" {
			dlqPartitions, _, err = k.EnsureTopic(tctx, cfg.Kafka.DLQTopic, cfg.Kafka.TopicPartitions, cfg.Kafka.TopicReplicationFactor)
		}
		cancel()
		if err != nil {
			if host, ok := source.NoSuchHost(err); ok {
				err = fmt.Errorf("%s: the broker host %s does not exist (DNS: no such host): %w", cfg.Names.Of("wire.Brokers"), host, err)
			}
			log.Error().Err(err).Strs("brokers", cfg.Kafka.Brokers).Msg("kafka: cannot use the topic; nothing was published")
			out.Result, out.Err = Failed, err
			return out
		}
		log.Info().Str("topic", cfg.Kafka.Topic).Int("partitions", n).Bool("created", created).Msg("kafka topic ready")
		sink, partitions = k, n
		if cfg.Kafka.TableTopic != "" {
			tctx, cancel := context.WithTimeout(ctx, 45*time.Second)
			tbl, err = openTable(tctx, cfg, k, log)
			cancel()
			if err != nil {
				out.Result, out.Err = Failed, err
				return out
			}
			defer tbl.close()
		}
	}

	// The schema before the export API: a registry that is down or
	// refuses the schema costs no export API call, and no marker.
	schemaID, err := registerSchema(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("schema registry: no snapshot taken, no marker written")
		out.Result, out.Err = Failed, err
		return out
	}

	log.Info().Str("auth", string(kind)).Str("api", cfg.APIURL).Msg("requesting export")
	manifest, err := exports.Manifest(ctx)
	if err != nil {
		return fail(err, "export API: no snapshot taken, no marker written")
	}
	out.Manifest = manifest

	// The tail of the topic decides whether this export is published
	// (docs/messages.md, "Unchanged exports and concurrent runs"). The table is read
	// back meanwhile, and only used for a snapshot that is published.
	if tbl != nil {
		tbl.startLoad(ctx, manifest, runID, log)
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
		MaxElapsed:    cfg.RetryMax,
		Logger:        log,
		Names:         cfg.Names,
	})
	snap, err := producer.NewSnapshot(producer.SnapshotConfig{
		Manifest:        manifest,
		Topic:           cfg.Kafka.Topic,
		DLQTopic:        cfg.Kafka.DLQTopic,
		Partitions:      partitions,
		DLQPartitions:   dlqPartitions,
		RunID:           runID,
		Workers:         cfg.Workers,
		MaxMessageBytes: cfg.Kafka.MaxMessageBytes,
		Names:           cfg.Names,
		Retryable:       source.IsRetryable,
		RetryMaxElapsed: cfg.RetryMax,
		Logger:          log,
		Observer:        observer,
		CloudEvents:     cfg.CloudEvents,
		ValueFormat:     cfg.ValueFormat,
		SchemaID:        schemaID,
		Tenant:          cfg.Tenant,
	}, blobs, sink)
	if err != nil {
		return fail(err, "snapshot")
	}
	bytesIn = blobs.BytesDownloaded

	stop := func() {}
	if env.Watch != nil {
		stop = env.Watch(watched{snap, blobs}, log)
	}
	res, err := snap.Run(ctx)
	stop()
	out.Res = res
	if tbl != nil && tbl.table != nil {
		out.DuplicateKeys = tbl.table.Stats().Duplicates
	}
	switch {
	case err == nil:
		out.Result = Complete
		if !cfg.DryRun {
			out.TopicGeneratedTime = manifest.GeneratedTime
		}
	case producer.IsComplete(err):
		// The snapshot is complete, its observer (the table topic) is
		// behind.
		out.Result, out.Err = Complete, err
		out.TopicGeneratedTime = manifest.GeneratedTime
	case res.Aborted:
		out.Result, out.Err = Aborted, err
	default:
		out.Result, out.Err = Failed, err
	}
	return out
}

// registerSchema registers the export's schema of a typed value format
// under "<topic>-value" and returns its id (0 for the other formats, and
// in a dry run, which contacts no registry).
func registerSchema(ctx context.Context, cfg Config, log zerolog.Logger) (uint32, error) {
	f, _ := schema.ParseValueFormat(cfg.ValueFormat)
	if !f.Registered() {
		return 0, nil
	}
	if cfg.DryRun {
		log.Warn().Str("value_format", f.String()).Msg("dry run: no schema is registered; values carry schema id 0")
		return 0, nil
	}
	e, ok := schema.LookupExport(cfg.Export)
	if !ok {
		return 0, fmt.Errorf("%s: %q is not an export", cfg.Names.Of("runner.Export"), cfg.Export)
	}
	if cfg.Registry == nil {
		return 0, fmt.Errorf("%s: not set", cfg.Names.Of("registry.URL"))
	}
	cl, err := registry.New(*cfg.Registry)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", cfg.Names.Of("registry.URL"), err)
	}
	kind, text := registry.Avro, schema.AvroSchema(e)
	if f == schema.FormatJSONSchema {
		kind, text = registry.JSONSchema, schema.JSONSchema(e)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	reg, err := cl.Register(rctx, registry.Subject(cfg.Kafka.Topic), kind, text)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", cfg.Names.Of("registry.URL"), err)
	}
	ev := log.Info().Str("subject", reg.Subject).Int("schema_id", reg.ID).Int("schema_version", reg.Version).Str("value_format", f.String())
	if reg.SetCompatibility {
		ev = ev.Str("compatibility", "BACKWARD")
	}
	ev.Msg("schema registered")
	return uint32(reg.ID), nil
}

// watched joins the snapshot's counters and the blob reader's.
type watched struct {
	*producer.Snapshot
	*source.Blobs
}

// checkTail reads the newest message of every partition and applies the
// rules for unchanged exports and concurrent runs. It reports done when
// the run must not publish; out then holds the result.
func checkTail(ctx context.Context, k *wire.Kafka, cfg Config, m schema.Manifest, partitions int, log zerolog.Logger, out *Outcome) (done bool) {
	began := time.Now()
	tail, err := k.Tail(ctx, cfg.Kafka.Topic, partitions)
	if err != nil {
		log.Error().Err(err).Msg("kafka: cannot read the newest message of every partition; nothing was published")
		out.Result, out.Err = Failed, err
		return true
	}
	log.Debug().Int("partitions", partitions).Int("fetches", tail.Fetches).Int("records_decoded", tail.Records).
		Dur("took", time.Since(began)).Msg("topic tail read")
	if _, gen, ok := tail.Complete(); ok {
		out.TopicGeneratedTime = gen
	}
	now := time.Now()
	v := Decide(tail, m, now, cfg.Lease, cfg.Force)
	for _, d := range v.Dead {
		log.Warn().Str("other_run_id", d.RunID).Time("other_last_write", d.LastWrite).Ints("partitions", d.Partitions).
			Str("lease", cfg.Lease.String()).Msg("an unfinished run's lease has expired: treating it as dead")
	}
	switch {
	case v.Unchanged && !cfg.Force:
		log.Info().Str("export", m.Export).Str("generated_time", m.GeneratedTime).Str("topic", cfg.Kafka.Topic).
			Int("partitions", partitions).Msg("snapshot unchanged")
		out.Result = Unchanged
		return true
	case v.Live != nil && !cfg.Force:
		err := &LeaseError{Run: *v.Live, Topic: cfg.Kafka.Topic, Age: now.Sub(v.Live.LastWrite), Lease: cfg.Lease, Names: cfg.Names}
		log.Error().Str("other_run_id", v.Live.RunID).Time("other_last_write", v.Live.LastWrite).Ints("partitions", v.Live.Partitions).
			Str("lease", cfg.Lease.String()).Msg("another run is publishing to the topic; nothing published")
		out.Result, out.Err, out.Lease = Skipped, err, err
		return true
	case v.Unchanged:
		log.Info().Str("generated_time", m.GeneratedTime).Msg("export unchanged; publishing it again (" + cfg.Names.Of("runner.Force") + ")")
	case v.Live != nil:
		log.Warn().Str("other_run_id", v.Live.RunID).Time("other_last_write", v.Live.LastWrite).
			Msg("another run is publishing to the topic; publishing anyway (" + cfg.Names.Of("runner.Force") + ")")
	}
	return false
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
