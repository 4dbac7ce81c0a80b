package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/tvm2kafka/tvm2kafka/internal/names"
	redaction "github.com/tvm2kafka/tvm2kafka/internal/redact"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// PartOpener opens one part file of the manifest and returns its
// DEcompressed content.
type PartOpener interface {
	OpenPart(ctx context.Context, part schema.Part) (io.ReadCloser, error)
}

// PartOpenerFunc adapts a function to PartOpener.
type PartOpenerFunc func(ctx context.Context, part schema.Part) (io.ReadCloser, error)

// OpenPart calls f.
func (f PartOpenerFunc) OpenPart(ctx context.Context, part schema.Part) (io.ReadCloser, error) {
	return f(ctx, part)
}

// The value formats of SnapshotConfig.ValueFormat (schema.ValueFormat's
// names).
const (
	ValueRaw        = "raw"
	ValueJSON       = "json"
	ValueAvro       = "avro"
	ValueJSONSchema = "json-schema"
)

func validFormat(name string) bool {
	_, ok := schema.ParseValueFormat(name)
	return ok
}

// Defaults of SnapshotConfig.
const (
	DefaultFlushTimeout = 20 * time.Second
)

// SnapshotConfig configures one snapshot run.
type SnapshotConfig struct {
	// Manifest lists the part files; it must hold at least one part.
	Manifest schema.Manifest
	// Topic receives records and markers; DLQTopic (optional) rejected
	// lines. Partitions and DLQPartitions are their partition counts
	// (Kafka.EnsureTopic).
	Topic, DLQTopic           string
	Partitions, DLQPartitions int
	// RunID is the mde.run_id header, unique per run (e.g. a UUID).
	RunID string
	// Workers is the number of parts processed at once (default: CPUs).
	Workers int
	// MaxMessageBytes bounds a record: key, value and headers; lines whose
	// record would be larger are rejected.
	MaxMessageBytes int
	// Names names the settings behind the fields ("producer.MaxMessageBytes")
	// in the reason of a rejected line; nil names the fields.
	Names names.Func
	// Retryable classifies OpenPart and read errors; nil = none is.
	Retryable func(error) bool
	// RetryMaxElapsed bounds the retries of one part's reads and of one
	// batch's produce requests, counted from the last progress.
	RetryMaxElapsed time.Duration
	// FlushTimeout is how long, after a failure or cancellation, the
	// produce requests in flight and the abort markers may take (default
	// 20s).
	FlushTimeout time.Duration
	// Now is the marker clock (default time.Now).
	Now func() time.Time
	// Logger receives warnings (rejected lines, retries) and the outcome;
	// it is expected to carry the run's context (run_id) already.
	Logger zerolog.Logger
	// ValueFormat is the records' value: "" or ValueRaw the line byte for
	// byte, ValueJSON its normalised form (schema.Normalise), ValueAvro and
	// ValueJSONSchema the typed record in the Confluent wire format with
	// SchemaID, the registry's id of the export's schema. Markers stay
	// JSON; with a typed format they carry content-type application/json.
	ValueFormat string
	SchemaID    uint32
	// CloudEvents adds the CloudEvents binary-mode headers (ce_*) to every
	// record and marker; Tenant names the tenant in ce_source ("": the
	// default one).
	CloudEvents bool
	Tenant      string
	// Observer, when set, is told about every acknowledged record and,
	// after the snapshot-end markers, about the completion (the table
	// topic). See Observer for what its errors mean.
	Observer Observer
}

// Progress is a consistent-enough view of a running snapshot.
type Progress struct {
	PartsDone, PartsTotal int
	Records, Rejected     int64
	LineBytes             int64
}

// Result is the outcome of Run.
type Result struct {
	RunID string
	// Records published and acknowledged, lines Rejected.
	Records, Rejected int64
	// PartitionRecords[p] is the number of records in partition p.
	PartitionRecords []int64
	// Parts is the number of part files in the manifest.
	Parts int
	// LineBytes is the size of all non-blank lines processed (records
	// and rejected), without terminators.
	LineBytes int64
	Duration  time.Duration
	// Aborted is set when the run failed after writing snapshot-start:
	// snapshot-abort was written (as far as the brokers allowed), with
	// Reason.
	Aborted bool
	Reason  string
	// ValuesNotJSON counts the members documented as JSON in a string
	// whose string is not JSON (kept as the string); ValuesMistyped the
	// members of a typed value (avro, json-schema) not of their column's
	// type (carried in ExtraMembers). Neither loses anything.
	ValuesNotJSON, ValuesMistyped int64
}

// PartError reports the failure of one part file.
type PartError struct {
	Part int    // mde.part
	Path string // blob path, without query string
	Line int64  // line at which it failed, 0 if unknown
	Err  error
}

func (e *PartError) Error() string {
	var b strings.Builder
	b.WriteString("part ")
	b.WriteString(strconv.Itoa(e.Part))
	if e.Path != "" {
		b.WriteString(" (")
		b.WriteString(schema.BlobPath(e.Path))
		b.WriteString(")")
	}
	if e.Line > 0 {
		b.WriteString(" line ")
		b.WriteString(strconv.FormatInt(e.Line, 10))
	}
	b.WriteString(": ")
	b.WriteString(redact(fmt.Sprint(e.Err)))
	return b.String()
}

func (e *PartError) Unwrap() error { return e.Err }

// Snapshot publishes one export snapshot. Create it with NewSnapshot and
// call Run once.
type Snapshot struct {
	cfg   SnapshotConfig
	parts PartOpener
	sink  wire.Sink
	log   zerolog.Logger

	hExport, hGenerated, hRunID, hContentType []byte
	format                                    schema.ValueFormat
	export                                    schema.Export
	// Members kept without their type (schema.ValueCounts).
	notJSON, mistyped atomic.Int64
	// CloudEvents headers shared by every record (ce_time, ce_source,
	// ce_type of a record).
	hCESpec, hCETime, hCESource, hCERecordType []byte

	// retryInitial is the first backoff interval (tests shorten it).
	retryInitial time.Duration
	// batchBytes, when set, bounds a partition's batch (tests shrink it).
	batchBytes int

	// The run's writers; wctx is the context their requests run on.
	main, dlq *wire.Writer
	wctx      context.Context

	started   atomic.Bool
	partsDone atomic.Int64
	records   atomic.Int64
	rejected  atomic.Int64
	lineBytes atomic.Int64
}

// NewSnapshot checks cfg, fills in defaults and prepares a run.
func NewSnapshot(cfg SnapshotConfig, parts PartOpener, sink wire.Sink) (*Snapshot, error) {
	switch {
	case parts == nil:
		return nil, errors.New("producer: NewSnapshot: nil PartOpener")
	case sink == nil:
		return nil, errors.New("producer: NewSnapshot: nil Sink")
	case len(cfg.Manifest.Parts) == 0:
		return nil, errors.New("producer: the export has no part files")
	case cfg.Topic == "":
		return nil, errors.New("producer: no topic")
	case cfg.DLQTopic == cfg.Topic:
		return nil, errors.New("producer: the DLQ topic must differ from the topic")
	case cfg.Partitions < 1:
		return nil, fmt.Errorf("producer: topic %q has %d partitions", cfg.Topic, cfg.Partitions)
	case cfg.RunID == "":
		return nil, errors.New("producer: no run id")
	case cfg.MaxMessageBytes < 1:
		return nil, fmt.Errorf("producer: MaxMessageBytes %d: must be positive", cfg.MaxMessageBytes)
	case cfg.RetryMaxElapsed <= 0:
		return nil, fmt.Errorf("producer: RetryMaxElapsed %s: must be positive", cfg.RetryMaxElapsed)
	case !validFormat(cfg.ValueFormat):
		return nil, fmt.Errorf("producer: value format %q: want one of %s", cfg.ValueFormat, strings.Join(schema.ValueFormats(), ", "))
	case cfg.DLQTopic != "" && cfg.DLQPartitions < 1:
		return nil, fmt.Errorf("producer: DLQ topic %q has %d partitions", cfg.DLQTopic, cfg.DLQPartitions)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}

	if cfg.Retryable == nil {
		cfg.Retryable = func(error) bool { return false }
	}

	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Snapshot{
		cfg:          cfg,
		parts:        parts,
		sink:         sink,
		log:          cfg.Logger,
		hExport:      []byte(cfg.Manifest.Export),
		hGenerated:   []byte(cfg.Manifest.GeneratedTime),
		hRunID:       []byte(cfg.RunID),
		retryInitial: 200 * time.Millisecond,
	}
	s.format, _ = schema.ParseValueFormat(cfg.ValueFormat)
	s.hContentType = []byte(s.format.ContentType())
	s.export, _ = schema.LookupExport(cfg.Manifest.Export)
	if cfg.CloudEvents {
		s.hCESpec = []byte(schema.CloudEventsSpecVersion)
		s.hCETime = []byte(schema.CloudEventsTime(cfg.Manifest.GeneratedTime))
		s.hCESource = []byte(schema.CloudEventsSource(cfg.Tenant, cfg.Manifest.Export))
		s.hCERecordType = []byte(schema.CloudEventsType(cfg.Manifest.Export, "record"))
	}
	return s, nil
}

// Progress returns the counters so far; safe for concurrent use.
func (s *Snapshot) Progress() Progress {
	return Progress{
		PartsDone:  int(s.partsDone.Load()),
		PartsTotal: len(s.cfg.Manifest.Parts),
		Records:    s.records.Load(),
		Rejected:   s.rejected.Load(),
		LineBytes:  s.lineBytes.Load(),
	}
}

// result reports the records acknowledged per partition by the brokers.
func (s *Snapshot) result(start time.Time) Result {
	pr := make([]int64, s.cfg.Partitions)
	if s.main != nil {
		pr = s.main.Records()
	}
	var records int64
	for _, n := range pr {
		records += n
	}
	return Result{
		RunID:            s.cfg.RunID,
		Records:          records,
		Rejected:         s.rejected.Load(),
		PartitionRecords: pr,
		Parts:            len(s.cfg.Manifest.Parts),
		LineBytes:        s.lineBytes.Load(),
		Duration:         time.Since(start),
		ValuesNotJSON:    s.notJSON.Load(),
		ValuesMistyped:   s.mistyped.Load(),
	}
}

// Run publishes the snapshot: snapshot-start on every partition, every
// part's records, then snapshot-end on every partition. On failure or
// cancellation of ctx it stops reading, lets the produce requests in flight
// finish within FlushTimeout, writes snapshot-abort on every partition
// (when snapshot-start was acknowledged) and returns an error with
// Result.Aborted set.
func (s *Snapshot) Run(ctx context.Context) (Result, error) {
	if !s.started.CompareAndSwap(false, true) {
		return Result{RunID: s.cfg.RunID}, errors.New("producer: Snapshot.Run called twice")
	}
	start := time.Now()

	// Produce requests run on wctx, which outlives ctx by FlushTimeout:
	// the request in flight is acknowledged (or fails) before the abort
	// markers are written.
	wctx, wcancel := graceCtx(ctx, s.cfg.FlushTimeout)
	defer wcancel()
	s.wctx = wctx
	var err error
	mainCfg := s.writerConfig(s.cfg.Topic, s.cfg.Partitions, s.refusedRecord)
	if obs := s.cfg.Observer; obs != nil {
		// Told about each record once the brokers acknowledged it.
		// The record's last header is mde.key (part.go): its natural key.
		mainCfg.Observe = func(at wire.Position, key, value, natural []byte) error {
			return obs.Record(int(at.Part), at.Line, key, natural, value)
		}
	}
	s.main, err = wire.NewWriter(wctx, s.sink, mainCfg)
	if err != nil {
		return s.result(start), err
	}
	defer s.main.Close()
	if s.cfg.DLQTopic != "" {
		s.dlq, err = wire.NewWriter(wctx, s.sink, s.writerConfig(s.cfg.DLQTopic, s.cfg.DLQPartitions, s.refusedDeadLetter))
		if err != nil {
			return s.result(start), err
		}
		defer s.dlq.Close()
	}

	// snapshot-start on every partition, acknowledged before any record.
	mctx, mcancel := graceCtx(ctx, s.cfg.FlushTimeout)
	acked, err := s.writeMarkers(mctx, s.main, schema.MarkerStart, nil)
	mcancel()
	if err != nil {
		err = fmt.Errorf("producer: writing snapshot-start markers: %w", err)
		if acked == 0 {
			return s.result(start), err
		}
		return s.abort(ctx, start, err)
	}
	s.log.Info().Int("partitions", s.cfg.Partitions).Int("parts", len(s.cfg.Manifest.Parts)).Msg(s.markerMessage(schema.MarkerStart))

	// The parts, then every record acknowledged.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Workers)
	for _, part := range s.cfg.Manifest.Parts {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return s.runPart(gctx, part) })
	}
	err = g.Wait()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil {
		err = s.main.Flush(ctx)
	}
	if err == nil && s.dlq != nil {
		err = s.dlq.Flush(ctx)
	}
	if err != nil {
		return s.abort(ctx, start, err)
	}

	// Every record is acknowledged: snapshot-end with the counts.
	counts := s.main.Records()
	var records int64
	for _, n := range counts {
		records += n
	}
	rejected := s.rejected.Load()
	ectx, ecancel := graceCtx(ctx, s.cfg.FlushTimeout)
	_, err = s.writeMarkers(ectx, s.main, schema.MarkerEnd, func(m *schema.Marker) {
		pr := counts[m.Partition]
		m.Records, m.Rejected, m.PartitionRecords = &records, &rejected, &pr
	})
	ecancel()
	if err != nil {
		return s.abort(ctx, start, fmt.Errorf("producer: writing snapshot-end markers: %w", err))
	}
	res := s.result(start)
	s.log.Info().Int64("records", res.Records).Int64("rejected", res.Rejected).Int("parts", res.Parts).
		Dur("duration", res.Duration).Msg(s.markerMessage(schema.MarkerEnd))
	if s.cfg.Observer != nil {
		octx, ocancel := graceCtx(ctx, s.cfg.FlushTimeout)
		err := s.cfg.Observer.Complete(octx)
		ocancel()
		if err != nil {
			return s.result(start), &CompleteError{Err: err}
		}
	}
	return res, nil
}

// writerConfig is the configuration of the run's writer of topic.
func (s *Snapshot) writerConfig(topic string, partitions int, onRefused wire.Refusal) wire.WriterConfig {
	wc := s.sink.WriterDefaults()
	wc.Topic, wc.Partitions, wc.OnRefused, wc.Log = topic, partitions, onRefused, s.log
	wc.RetryInitial, wc.RetryMax = s.retryInitial, s.cfg.RetryMaxElapsed
	// Two batches per partition are alive (one filling, one in flight):
	// keep them within 32 MB whatever the partition count.
	wc.BatchBytes = min(wc.BatchBytes, max(64<<10, (32<<20)/(2*partitions)))
	wc.BatchBytes = max(wc.BatchBytes, s.cfg.MaxMessageBytes+1024)
	if s.batchBytes > 0 {
		wc.BatchBytes = s.batchBytes
	}
	return wc
}

// markerMessage is the log message of the markers of kind written to
// every partition: in a dry run (a Sink that discards) nothing is written.
func (s *Snapshot) markerMessage(kind schema.MarkerKind) string {
	if s.sink.WriterDefaults().Discard {
		return string(kind) + " built and discarded (dry run)"
	}
	return string(kind) + " written"
}

// abort writes snapshot-abort on every partition with cause's reason.
func (s *Snapshot) abort(ctx context.Context, start time.Time, cause error) (Result, error) {
	reason := redact(cause.Error())
	if ctx.Err() != nil && errors.Is(cause, ctx.Err()) {
		reason = "cancelled: " + redact(context.Cause(ctx).Error())
	}
	// Records not yet sent are dropped; a request in flight ends first.
	s.main.Close()
	if s.dlq != nil {
		s.dlq.Close()
	}
	// The abort markers come from a producer of their own: the run's
	// producer may have left a partition with a batch whose fate is
	// unknown, and its sequence cannot go on after it.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FlushTimeout)
	defer cancel()
	aerr := func() error {
		aw, err := wire.NewWriter(actx, s.sink, s.writerConfig(s.cfg.Topic, s.cfg.Partitions, nil))
		if err != nil {
			return err
		}
		defer aw.Close()
		_, err = s.writeMarkers(actx, aw, schema.MarkerAbort, func(m *schema.Marker) { m.Reason = reason })
		return err
	}()
	res := s.result(start)
	res.Aborted, res.Reason = true, reason
	ev := s.log.Error().Str("reason", reason).Int64("records", res.Records).Int64("rejected", res.Rejected)
	if aerr != nil {
		ev.Str("abort_error", redact(aerr.Error())).Msg("snapshot aborted; writing snapshot-abort markers failed")
		return res, fmt.Errorf("snapshot aborted: %w (writing snapshot-abort markers failed too: %v)", cause, aerr)
	}
	ev.Msg("snapshot aborted; snapshot-abort written")
	return res, fmt.Errorf("snapshot aborted: %w", cause)
}

// writeMarkers writes one marker of kind to every partition through w and
// waits for the acknowledgements; acked counts the partitions whose marker
// was acknowledged.
func (s *Snapshot) writeMarkers(ctx context.Context, w *wire.Writer, kind schema.MarkerKind, fill func(*schema.Marker)) (acked int, err error) {
	now := s.cfg.Now()
	hdrs := []wire.Header{
		{Key: schema.HeaderMarker, Value: []byte(kind)},
		{Key: schema.HeaderExport, Value: s.hExport},
		{Key: schema.HeaderGeneratedTime, Value: s.hGenerated},
		{Key: schema.HeaderRunID, Value: s.hRunID},
	}
	if s.format.Registered() {
		hdrs = append(hdrs, wire.Header{Key: schema.HeaderContentType, Value: []byte(schema.ContentTypeJSON)})
	}
	base := len(hdrs)
	for p := range s.cfg.Partitions {
		if s.cfg.CloudEvents {
			hdrs = append(hdrs[:base],
				wire.Header{Key: schema.HeaderCESpecVersion, Value: s.hCESpec},
				wire.Header{Key: schema.HeaderCEID, Value: fmt.Appendf(nil, "%s/%s/%d", s.cfg.RunID, kind, p)},
				wire.Header{Key: schema.HeaderCESource, Value: s.hCESource},
				wire.Header{Key: schema.HeaderCEType, Value: []byte(schema.CloudEventsType(s.cfg.Manifest.Export, string(kind)))},
				wire.Header{Key: schema.HeaderCETime, Value: s.hCETime})
		}
		m := schema.Marker{
			Kind:          kind,
			Export:        s.cfg.Manifest.Export,
			GeneratedTime: s.cfg.Manifest.GeneratedTime,
			RunID:         s.cfg.RunID,
			Partition:     p,
			Partitions:    s.cfg.Partitions,
			Parts:         len(s.cfg.Manifest.Parts),
			Time:          now,
		}
		if fill != nil {
			fill(&m)
		}
		v, err := json.Marshal(m)
		if err != nil {
			return 0, fmt.Errorf("encoding marker: %w", err)
		}
		if err := w.Add(ctx, p, wire.KindMarker, wire.Position{}, []byte(schema.MarkerKey), v, false, hdrs); err != nil {
			return 0, fmt.Errorf("partition %d: %w", p, err)
		}
	}
	errs := w.FlushEach(ctx)
	for _, e := range errs {
		if e == nil {
			acked++
		}
	}
	if acked < len(errs) {
		return acked, fmt.Errorf("%d of %d partitions failed: %w", len(errs)-acked, len(errs), errors.Join(errs...))
	}
	return acked, nil
}

// deadLetter adds the dead-letter message of a rejected line when a DLQ
// topic is set: the raw line as value (empty when it is too large to be
// sent, which mde.error then says), partition = part index mod the DLQ's
// partitions, so that a part's rejections stay in order.
func (s *Snapshot) deadLetter(ctx context.Context, part int, hPart []byte, line int64, raw []byte, reason string) error {
	if s.dlq == nil {
		return nil
	}
	var lineBuf [20]byte
	hdrs := []wire.Header{
		{Key: schema.HeaderExport, Value: s.hExport},
		{Key: schema.HeaderGeneratedTime, Value: s.hGenerated},
		{Key: schema.HeaderRunID, Value: s.hRunID},
		{Key: schema.HeaderPart, Value: hPart},
		{Key: schema.HeaderLine, Value: strconv.AppendInt(lineBuf[:0], line, 10)},
		{Key: schema.HeaderError, Value: nil},
	}
	switch {
	case raw == nil:
		reason += " (value omitted)"
	case wire.RecordBytes(nil, raw, hdrs)+len(reason) > s.cfg.MaxMessageBytes:
		raw = nil
		reason += " (line too large for the dead-letter topic: value omitted)"
	}
	hdrs[5].Value = []byte(reason)
	if raw == nil {
		raw = []byte{}
	}
	return s.dlq.Add(ctx, part%s.cfg.DLQPartitions, wire.KindDeadLetter, wire.Position{Part: int32(part), Line: line}, nil, raw, false, hdrs)
}

// refusedRecord handles a record the brokers refused as too large: the line
// is rejected alone, its dead-letter message carries the raw line.
func (s *Snapshot) refusedRecord(kind wire.Kind, at wire.Position, rec wire.Record, cause error) (*wire.Record, error) {
	if kind != wire.KindRecord {
		return nil, fmt.Errorf("the brokers refused a snapshot marker: %w", cause)
	}
	part, line := int(at.Part), at.Line
	hPart := strconv.AppendInt(nil, int64(part), 10)
	const reason = "refused by the broker: MESSAGE_TOO_LARGE"
	s.rejected.Add(1)
	s.records.Add(-1)
	s.log.Warn().Int("part", part).Int64("line", line).Str("reason", reason).Msg("line rejected")
	return nil, s.deadLetter(s.wctx, part, hPart, line, rec.Value, reason)
}

// refusedDeadLetter handles a dead-letter message the brokers refused as
// too large: it is sent again without its value.
func (s *Snapshot) refusedDeadLetter(_ wire.Kind, at wire.Position, rec wire.Record, _ error) (*wire.Record, error) {
	s.log.Warn().Int("part", int(at.Part)).Int64("line", at.Line).Msg("dead-letter message refused as too large; sending it without its value")
	out := wire.Record{Value: []byte{}}
	for _, h := range rec.Headers {
		if h.Key == schema.HeaderError {
			h.Value = append(append([]byte{}, h.Value...), " (refused by the dead-letter topic as too large: value omitted)"...)
		}
		out.Headers = append(out.Headers, h)
	}
	return &out, nil
}

// graceCtx returns a context that is not cancelled with parent but grace
// after parent is done.
func graceCtx(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	var mu sync.Mutex
	var timer *time.Timer
	stop := context.AfterFunc(parent, func() {
		mu.Lock()
		timer = time.AfterFunc(grace, cancel)
		mu.Unlock()
	})
	return ctx, func() {
		stop()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

// redact removes SAS signatures from text that might quote a blob URL.
func redact(s string) string { return redaction.String(s) }
