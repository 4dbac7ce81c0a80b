package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// partRun is the state of one part file, owned by its goroutine.
type partRun struct {
	s     *Snapshot
	part  schema.Part
	hPart []byte
	log   zerolog.Logger

	lr       *schema.LineReader
	keys     *schema.Keys
	lastRead int64 // last line appended to the topic (or rejected): a reopened part skips up to here
	seen     int64 // last line number returned by lr in the current attempt
	lineBuf  [20]byte
	ceID     []byte               // "<run_id>/<part>/" and, per record, its line (CloudEvents)
	enc      *schema.ValueEncoder // nil for raw values
	value    []byte               // the value of the record (not raw)
	counted  schema.ValueCounts   // enc's counts already added to the Snapshot's

	// Progress not yet added to the Snapshot's counters.
	records, rejected, lineBytes, pending int64
}

// writeError marks a failure of the Kafka side while a part was read: it
// fails the part as it is (reopening the blob cannot help).
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// runPart reads one part file and appends its records to the partitions of
// the topic, reopening it after retryable read errors.
func (s *Snapshot) runPart(ctx context.Context, part schema.Part) error {
	pr := &partRun{
		s:     s,
		part:  part,
		hPart: strconv.AppendInt(nil, int64(part.Index), 10),
		log:   s.log.With().Int("part", part.Index).Str("path", schema.BlobPath(part.Path)).Logger(),
		keys:  schema.NewKeys(schema.KeysOf(s.cfg.Manifest.Export)),
	}
	if s.format != schema.FormatRaw {
		pr.enc = schema.NewValueEncoder(s.export, s.format, s.cfg.SchemaID)
	}
	defer pr.publishProgress()
	attempt := 0
	bo := &progressBackOff{ExponentialBackOff: reopenBackOff(s.retryInitial, s.cfg.RetryMaxElapsed), progress: &pr.lastRead}
	err := backoff.RetryNotify(func() error {
		attempt++
		err := pr.readOnce(ctx)
		var we *writeError
		if err == nil || ctx.Err() != nil || errors.As(err, &we) || !s.cfg.Retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(bo, ctx), func(err error, d time.Duration) {
		pr.log.Warn().Int64("line", pr.seen+1).Int("attempt", attempt).Str("error", redact(err.Error())).
			Int64("resume_after_line", pr.lastRead).Dur("retry_in", d).Msg("part read failed; reopening")
	})
	var we *writeError
	switch {
	case err == nil:
		s.partsDone.Add(1)
		pr.log.Debug().Int64("lines", pr.lastRead).Msg("part done")
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &we):
		err = we.err
	case s.cfg.Retryable(err):
		err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
	}
	return &PartError{Part: pr.part.Index, Path: pr.part.Path, Line: pr.seen + 1, Err: err}
}

// progressBackOff restarts its schedule (and its MaxElapsedTime) when the
// part made progress since the previous failure: a part cut now and then
// is retried for as long as each reopening reads further.
type progressBackOff struct {
	*backoff.ExponentialBackOff
	progress *int64 // lines read so far
	at       int64  // progress at the previous failure
}

func (b *progressBackOff) NextBackOff() time.Duration {
	if *b.progress > b.at {
		b.at = *b.progress
		b.ExponentialBackOff.Reset()
	}
	return b.ExponentialBackOff.NextBackOff()
}

// readOnce opens the part and frames it to the end, skipping the lines up
// to lastRead. It returns nil at the end of the content.
func (pr *partRun) readOnce(ctx context.Context) error {
	s := pr.s
	rc, err := s.parts.OpenPart(ctx, pr.part)
	if err != nil {
		return fmt.Errorf("opening part: %w", err)
	}
	defer rc.Close()
	if pr.lr == nil {
		pr.lr = schema.NewLineReader(rc, s.cfg.MaxMessageBytes)
	} else {
		pr.lr.Reset(rc)
	}
	pr.seen = 0
	done := ctx.Done()
	for {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		ln, err := pr.lr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		pr.seen = ln.Number
		if ln.Number <= pr.lastRead {
			continue
		}
		if err := pr.add(ctx, ln); err != nil {
			return &writeError{err}
		}
		pr.lastRead = ln.Number
		if pr.pending++; pr.pending >= 256 {
			pr.publishProgress()
		}
	}
}

func (pr *partRun) publishProgress() {
	s := pr.s
	s.records.Add(pr.records)
	s.rejected.Add(pr.rejected)
	s.lineBytes.Add(pr.lineBytes)
	pr.records, pr.rejected, pr.lineBytes, pr.pending = 0, 0, 0, 0
	if pr.enc != nil {
		c := pr.enc.Counts()
		s.notJSON.Add(c.NotJSON - pr.counted.NotJSON)
		s.mistyped.Add(c.Mistyped - pr.counted.Mistyped)
		pr.counted = c
	}
}

// add turns one line into a record of its partition, or a rejection.
func (pr *partRun) add(ctx context.Context, ln schema.Line) error {
	s := pr.s
	pr.lineBytes += ln.Length
	if ln.TooLong {
		return pr.reject(ctx, ln.Number, nil, fmt.Sprintf("line of %d bytes exceeds %s (%d)", ln.Length, s.cfg.Names.Of("producer.MaxMessageBytes"), s.cfg.MaxMessageBytes))
	}
	key, natural, err := pr.keys.Read(ln.Bytes)
	if err != nil {
		return pr.reject(ctx, ln.Number, ln.Bytes, err.Error())
	}
	if string(key) == schema.MarkerKey {
		return pr.reject(ctx, ln.Number, ln.Bytes, `DeviceId "`+schema.MarkerKey+`" is reserved for snapshot markers`)
	}
	value := ln.Bytes
	if pr.enc != nil {
		if pr.value, err = pr.enc.Encode(pr.value[:0], ln.Bytes); err != nil {
			return pr.reject(ctx, ln.Number, ln.Bytes, err.Error())
		}
		value = pr.value
	}
	var hdrBuf [13]wire.Header
	lineNum := strconv.AppendInt(pr.lineBuf[:0], ln.Number, 10)
	hdrs := append(hdrBuf[:0],
		wire.Header{Key: schema.HeaderExport, Value: s.hExport},
		wire.Header{Key: schema.HeaderGeneratedTime, Value: s.hGenerated},
		wire.Header{Key: schema.HeaderRunID, Value: s.hRunID},
		wire.Header{Key: schema.HeaderPart, Value: pr.hPart},
		wire.Header{Key: schema.HeaderLine, Value: lineNum},
		wire.Header{Key: schema.HeaderContentType, Value: s.hContentType})
	if s.cfg.CloudEvents {
		if pr.ceID == nil {
			pr.ceID = append(append(append([]byte(s.cfg.RunID), '/'), pr.hPart...), '/')
		}
		prefix := len(s.cfg.RunID) + len(pr.hPart) + 2
		pr.ceID = append(pr.ceID[:prefix], lineNum...)
		hdrs = append(hdrs,
			wire.Header{Key: schema.HeaderCESpecVersion, Value: s.hCESpec},
			wire.Header{Key: schema.HeaderCEID, Value: pr.ceID},
			wire.Header{Key: schema.HeaderCESource, Value: s.hCESource},
			wire.Header{Key: schema.HeaderCEType, Value: s.hCERecordType},
			wire.Header{Key: schema.HeaderCETime, Value: s.hCETime},
			wire.Header{Key: schema.HeaderCESubject, Value: key})
	}
	// mde.key comes last: the observer is handed the last header.
	hdrs = append(hdrs, wire.Header{Key: schema.HeaderKey, Value: natural})
	if size := wire.RecordBytes(key, value, hdrs); size > s.cfg.MaxMessageBytes {
		return pr.reject(ctx, ln.Number, ln.Bytes, fmt.Sprintf("record of %d bytes (key, value and headers) exceeds %s (%d)", size, s.cfg.Names.Of("producer.MaxMessageBytes"), s.cfg.MaxMessageBytes))
	}
	p := schema.Partition(key, s.cfg.Partitions)
	if err := s.main.Add(ctx, p, wire.KindRecord, wire.Position{Part: int32(pr.part.Index), Line: ln.Number}, key, value, false, hdrs); err != nil {
		return err
	}
	pr.records++
	return nil
}

// reject counts a rejected line, logs it by position and adds its
// dead-letter message when a DLQ topic is set. raw is the line (nil when
// it was too long to be read).
func (pr *partRun) reject(ctx context.Context, line int64, raw []byte, reason string) error {
	pr.rejected++
	pr.log.Warn().Int64("line", line).Str("reason", reason).Msg("line rejected")
	return pr.s.deadLetter(ctx, pr.part.Index, pr.hPart, line, raw, reason)
}

// reopenBackOff is the backoff of a part's reopenings: from initial, each
// wait at most 5 s, given up maxElapsed after the last progress.
func reopenBackOff(initial, maxElapsed time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(backoff.WithInitialInterval(initial),
		backoff.WithMaxInterval(5*time.Second), backoff.WithMaxElapsedTime(maxElapsed))
}
