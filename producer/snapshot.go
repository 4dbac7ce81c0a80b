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

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

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

// Defaults of SnapshotConfig.
const (
	DefaultFlushTimeout = 20 * time.Second
)

// SnapshotConfig configures one snapshot run.
type SnapshotConfig struct {
	// Manifest lists the part files; it must hold at least one part.
	Manifest schema.Manifest
	// Topic receives records and markers; DLQTopic (optional) rejected
	// lines. Partitions is Topic's partition count (Kafka.EnsureTopic).
	Topic, DLQTopic string
	Partitions      int
	// RunID is the mde.run_id header, unique per run (e.g. a UUID).
	RunID string
	// Workers is the number of parts processed at once (default: CPUs).
	Workers int
	// MaxMessageBytes bounds a record (default 1,000,000); longer lines
	// are rejected.
	MaxMessageBytes int
	// Retryable classifies OpenPart and read errors; nil = none is.
	Retryable func(error) bool
	// RetryMaxElapsed bounds the retries of one part's reads and of one
	// batch's writes (default 2m).
	RetryMaxElapsed time.Duration
	// FlushTimeout is how long, after a failure or cancellation, the
	// writes in flight and the abort markers may take (default 20s).
	FlushTimeout time.Duration
	// Now is the marker clock (default time.Now).
	Now func() time.Time
	// Logger receives warnings (rejected lines, retries) and the outcome;
	// it is expected to carry the run's context (run_id) already.
	Logger zerolog.Logger
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

// Batch limits of the pipeline: a batch is handed to the writer when it
// holds batchRecords messages or batchBytes bytes of line data.
const (
	batchRecords = 2000
	batchBytes   = 2 << 20
)

// Snapshot publishes one export snapshot. Create it with NewSnapshot and
// call Run once.
type Snapshot struct {
	cfg   SnapshotConfig
	parts PartOpener
	w     MessageWriter
	log   zerolog.Logger

	hExport, hGenerated, hRunID, hContentType []byte

	// retryInitial is the first backoff interval (tests shorten it).
	retryInitial time.Duration
	// batchRecords and batchBytes bound a pipeline batch (tests shrink them).
	batchRecords, batchBytes int

	pool sync.Pool // *batch, reused across parts

	started     atomic.Bool
	partsDone   atomic.Int64
	records     atomic.Int64
	rejected    atomic.Int64
	lineBytes   atomic.Int64
	partRecords []atomic.Int64
}

// NewSnapshot checks cfg, fills in defaults and prepares a run.
func NewSnapshot(cfg SnapshotConfig, parts PartOpener, w MessageWriter) (*Snapshot, error) {
	switch {
	case parts == nil:
		return nil, errors.New("producer: NewSnapshot: nil PartOpener")
	case w == nil:
		return nil, errors.New("producer: NewSnapshot: nil MessageWriter")
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
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Retryable == nil {
		cfg.Retryable = func(error) bool { return false }
	}
	if cfg.RetryMaxElapsed <= 0 {
		cfg.RetryMaxElapsed = DefaultRetryMaxElapsed
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
		w:            w,
		log:          cfg.Logger,
		hExport:      []byte(cfg.Manifest.Export),
		hGenerated:   []byte(cfg.Manifest.GeneratedTime),
		hRunID:       []byte(cfg.RunID),
		hContentType: []byte(schema.ContentTypeJSON),
		retryInitial: 200 * time.Millisecond,
		batchRecords: batchRecords,
		batchBytes:   batchBytes,
		partRecords:  make([]atomic.Int64, cfg.Partitions),
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

func (s *Snapshot) result(start time.Time) Result {
	pr := make([]int64, len(s.partRecords))
	for i := range s.partRecords {
		pr[i] = s.partRecords[i].Load()
	}
	return Result{
		RunID:            s.cfg.RunID,
		Records:          s.records.Load(),
		Rejected:         s.rejected.Load(),
		PartitionRecords: pr,
		Parts:            len(s.cfg.Manifest.Parts),
		LineBytes:        s.lineBytes.Load(),
		Duration:         time.Since(start),
	}
}

// Run publishes the snapshot: snapshot-start on every partition, every
// part's records, then snapshot-end on every partition. On failure or
// cancellation of ctx it stops reading, lets the writes in flight finish
// within FlushTimeout, writes snapshot-abort on every partition (when
// snapshot-start was acknowledged) and returns an error with
// Result.Aborted set.
func (s *Snapshot) Run(ctx context.Context) (Result, error) {
	if !s.started.CompareAndSwap(false, true) {
		return Result{RunID: s.cfg.RunID}, errors.New("producer: Snapshot.Run called twice")
	}
	start := time.Now()

	// snapshot-start on every partition, acknowledged before any record.
	mctx, mcancel := graceCtx(ctx, s.cfg.FlushTimeout)
	acked, err := s.writeMarkers(ctx, mctx, schema.MarkerStart, nil)
	mcancel()
	if err != nil {
		err = fmt.Errorf("producer: writing snapshot-start markers: %w", err)
		if acked == 0 {
			return s.result(start), err
		}
		return s.abort(ctx, start, err)
	}
	s.log.Info().Int("partitions", s.cfg.Partitions).Int("parts", len(s.cfg.Manifest.Parts)).Msg("snapshot-start written")

	// The parts. Writes run on wctx, which outlives ctx by FlushTimeout so
	// that the batch in flight is acknowledged (or fails) before the abort
	// markers are written.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Workers)
	wctx, wcancel := graceCtx(gctx, s.cfg.FlushTimeout)
	for _, part := range s.cfg.Manifest.Parts {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return s.runPart(gctx, wctx, part) })
	}
	err = g.Wait()
	wcancel()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		return s.abort(ctx, start, err)
	}

	// Every record is acknowledged: snapshot-end with the counts.
	ectx, ecancel := graceCtx(ctx, s.cfg.FlushTimeout)
	_, err = s.writeMarkers(ctx, ectx, schema.MarkerEnd, func(m *schema.Marker) {
		records, rejected := s.records.Load(), s.rejected.Load()
		pr := s.partRecords[m.Partition].Load()
		m.Records, m.Rejected, m.PartitionRecords = &records, &rejected, &pr
	})
	ecancel()
	if err != nil {
		return s.abort(ctx, start, fmt.Errorf("producer: writing snapshot-end markers: %w", err))
	}
	res := s.result(start)
	s.log.Info().Int64("records", res.Records).Int64("rejected", res.Rejected).Int("parts", res.Parts).
		Dur("duration", res.Duration).Msg("snapshot-end written")
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

// abort writes snapshot-abort on every partition with cause's reason.
func (s *Snapshot) abort(ctx context.Context, start time.Time, cause error) (Result, error) {
	reason := redact(cause.Error())
	if ctx.Err() != nil && errors.Is(cause, ctx.Err()) {
		reason = "cancelled: " + redact(context.Cause(ctx).Error())
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FlushTimeout)
	defer cancel()
	_, aerr := s.writeMarkers(actx, actx, schema.MarkerAbort, func(m *schema.Marker) { m.Reason = reason })
	res := s.result(start)
	res.Aborted, res.Reason = true, reason
	ev := s.log.Error().Str("reason", reason).Int64("records", res.Records).Int64("rejected", res.Rejected)
	if aerr != nil {
		ev.AnErr("abort_error", errors.New(redact(aerr.Error()))).Msg("snapshot aborted; writing snapshot-abort markers failed")
		return res, fmt.Errorf("snapshot aborted: %w (writing snapshot-abort markers failed too: %v)", cause, aerr)
	}
	ev.Msg("snapshot aborted; snapshot-abort written")
	return res, fmt.Errorf("snapshot aborted: %w", cause)
}

// writeMarkers writes one marker of kind to every partition, retrying the
// failed ones until RetryMaxElapsed or until stop is done; writes use wctx.
// acked counts the partitions whose marker was acknowledged.
func (s *Snapshot) writeMarkers(stop, wctx context.Context, kind schema.MarkerKind, fill func(*schema.Marker)) (acked int, err error) {
	now := s.cfg.Now()
	msgs := make([]kafka.Message, s.cfg.Partitions)
	for p := range msgs {
		m := schema.Marker{
			Marker:        kind,
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
		msgs[p] = kafka.Message{
			Topic:     s.cfg.Topic,
			Partition: p,
			Key:       []byte(schema.MarkerKey),
			Value:     v,
			Headers: []kafka.Header{
				{Key: schema.HeaderMarker, Value: []byte(kind)},
				{Key: schema.HeaderExport, Value: s.hExport},
				{Key: schema.HeaderGeneratedTime, Value: s.hGenerated},
				{Key: schema.HeaderRunID, Value: s.hRunID},
			},
		}
	}
	pending := msgs
	bo := s.newBackOff()
	for {
		err = s.w.WriteMessages(wctx, pending...)
		if err == nil {
			return acked + len(pending), nil
		}
		var werrs kafka.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			var next []kafka.Message
			for i, e := range werrs {
				if e == nil {
					acked++
				} else {
					next = append(next, pending[i])
					err = e
				}
			}
			pending = next
		}
		s.log.Warn().Str("marker", string(kind)).Int("pending", len(pending)).Err(err).Msg("marker write failed; retrying")
		if werr := s.wait(stop, bo); werr != nil {
			return acked, fmt.Errorf("%d of %d partitions failed: %w", len(pending), len(msgs), err)
		}
	}
}

func (s *Snapshot) newBackOff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = s.retryInitial
	bo.MaxInterval = 10 * time.Second
	bo.MaxElapsedTime = s.cfg.RetryMaxElapsed
	bo.Reset()
	return bo
}

// wait sleeps the next backoff interval. It fails when the backoff gives up
// or stop is done.
func (s *Snapshot) wait(stop context.Context, bo backoff.BackOff) error {
	d := bo.NextBackOff()
	if d == backoff.Stop {
		return errors.New("retries exhausted")
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-stop.Done():
		return stop.Err()
	}
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
func redact(s string) string {
	const sig = "sig="
	lower := strings.ToLower(s)
	if !strings.Contains(lower, sig) {
		return s
	}
	var b strings.Builder
	i := 0
	for {
		j := strings.Index(lower[i:], sig)
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		j += i + len(sig)
		b.WriteString(s[i:j])
		b.WriteString("REDACTED")
		k := j
		for k < len(s) && !strings.ContainsRune("&\"' \t\r\n)>", rune(s[k])) {
			k++
		}
		i = k
	}
}
