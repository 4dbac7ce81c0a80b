package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

type msgKind uint8

const (
	kindRecord msgKind = iota
	kindDLQ
	kindRefused // a record the broker refused as too large: now a rejection
)

// msgMeta describes batch.msgs[i].
type msgMeta struct {
	line int64
	kind msgKind
}

// batch is a set of messages of one part in line order. Keys, values and
// header values live in arena, headers in hdrs; both are reused once the
// batch was acknowledged, so the steady state allocates nothing per line.
// Growing arena or hdrs is safe: messages keep pointing at the old,
// unchanged backing arrays.
type batch struct {
	msgs  []kafka.Message
	meta  []msgMeta
	hdrs  []kafka.Header
	arena []byte

	partCounts []int64 // records per partition
	records    int64
	rejected   int64
	lineBytes  int64
	lastLine   int64 // highest line number in the batch (records and rejections)
}

func (b *batch) reset() {
	clear(b.msgs) // drop references to other batches' data
	b.msgs, b.meta, b.hdrs, b.arena = b.msgs[:0], b.meta[:0], b.hdrs[:0], b.arena[:0]
	clear(b.partCounts)
	b.records, b.rejected, b.lineBytes, b.lastLine = 0, 0, 0, 0
}

func (b *batch) empty() bool { return len(b.msgs) == 0 && b.rejected == 0 }

func (s *Snapshot) getBatch() *batch {
	if b, ok := s.pool.Get().(*batch); ok {
		return b
	}
	return &batch{
		msgs:       make([]kafka.Message, 0, s.batchRecords),
		meta:       make([]msgMeta, 0, s.batchRecords),
		hdrs:       make([]kafka.Header, 0, 6*s.batchRecords),
		arena:      make([]byte, 0, s.batchBytes+64<<10),
		partCounts: make([]int64, s.cfg.Partitions),
	}
}

// partRun is the state of one part file: its reader goroutine owns lr,
// cur, lastRead and seen.
type partRun struct {
	s     *Snapshot
	part  schema.Part
	hPart []byte
	log   zerolog.Logger

	lr       *schema.LineReader
	cur      *batch
	lastRead int64 // last line handed to the writer: a reopened part skips up to here
	seen     int64 // last line number returned by lr in the current attempt
}

// runPart reads and writes one part: one reader goroutine and one writer
// goroutine exchanging two batches.
func (s *Snapshot) runPart(gctx, wctx context.Context, part schema.Part) error {
	pr := &partRun{
		s:     s,
		part:  part,
		hPart: strconv.AppendInt(nil, int64(part.Index), 10),
		log:   s.log.With().Int("part", part.Index).Str("path", schema.BlobPath(part.Path)).Logger(),
	}
	free := make(chan *batch, 2)
	free <- s.getBatch()
	free <- s.getBatch()
	full := make(chan *batch)
	pg, pctx := errgroup.WithContext(gctx)
	pg.Go(func() error { return pr.read(pctx, free, full) })
	pg.Go(func() error { return pr.write(pctx, wctx, full, free) })
	if err := pg.Wait(); err != nil {
		// Batches are not recycled: a write abandoned at FlushTimeout may
		// still reference them.
		return err
	}
	s.partsDone.Add(1)
	pr.log.Debug().Int64("lines", pr.lastRead).Msg("part done")
	for range 2 {
		select {
		case b := <-free:
			b.reset()
			s.pool.Put(b)
		default:
		}
	}
	return nil
}

func (pr *partRun) partError(line int64, err error) *PartError {
	return &PartError{Part: pr.part.Index, Path: pr.part.Path, Line: line, Err: err}
}

// read frames the part into batches, reopening it after retryable errors.
func (pr *partRun) read(ctx context.Context, free <-chan *batch, full chan<- *batch) error {
	s := pr.s
	select {
	case pr.cur = <-free:
	case <-ctx.Done():
		return ctx.Err()
	}
	bo := s.newBackOff()
	progressAt := int64(0)
	for attempt := 1; ; attempt++ {
		err := pr.readOnce(ctx, free, full)
		if err == nil {
			if pr.cur.empty() {
				pr.cur = nil
			} else {
				select {
				case full <- pr.cur:
					pr.cur = nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			close(full)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line := pr.seen + 1
		if !s.cfg.Retryable(err) {
			return pr.partError(line, err)
		}
		if pr.lastRead > progressAt { // progress since the last failure
			progressAt = pr.lastRead
			bo.Reset()
		}
		pr.log.Warn().Int64("line", line).Int("attempt", attempt).Str("error", redact(err.Error())).
			Int64("resume_after_line", pr.lastRead).Msg("part read failed; reopening")
		if werr := s.wait(ctx, bo); werr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return pr.partError(line, fmt.Errorf("%w (gave up after %d attempts)", err, attempt))
		}
	}
}

// readOnce opens the part and frames it to the end, skipping the lines up
// to lastRead. It returns nil at the end of the content.
func (pr *partRun) readOnce(ctx context.Context, free <-chan *batch, full chan<- *batch) error {
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
		b := pr.cur
		if len(b.msgs)+int(b.rejected) >= s.batchRecords || len(b.arena) >= s.batchBytes {
			select {
			case full <- b:
			case <-done:
				return ctx.Err()
			}
			select {
			case b = <-free:
				pr.cur = b
			case <-done:
				pr.cur = nil
				return ctx.Err()
			}
		}
		pr.add(b, ln)
		pr.lastRead = ln.Number
	}
}

// recordOverhead bounds what a record message adds to its key and value
// (kafka-go's record framing plus the six headers) besides the headers'
// run-constant values.
const recordOverhead = 64 + 6*(10+16)

// add turns one line into a record message, or a rejection.
func (pr *partRun) add(b *batch, ln schema.Line) {
	s := pr.s
	b.lastLine = ln.Number
	b.lineBytes += ln.Length
	if ln.TooLong {
		pr.reject(b, ln.Number, nil, fmt.Sprintf("line of %d bytes exceeds KAFKA_MAX_MESSAGE_BYTES (%d)", ln.Length, s.cfg.MaxMessageBytes))
		return
	}
	off := len(b.arena)
	b.arena = append(b.arena, ln.Bytes...)
	val := b.arena[off:len(b.arena):len(b.arena)]
	key, err := schema.DeviceID(val)
	if err != nil {
		b.arena = b.arena[:off]
		pr.reject(b, ln.Number, ln.Bytes, err.Error())
		return
	}
	if string(key) == schema.MarkerKey {
		b.arena = b.arena[:off]
		pr.reject(b, ln.Number, ln.Bytes, `DeviceId "`+schema.MarkerKey+`" is reserved for snapshot markers`)
		return
	}
	if size := len(key) + len(val) + pr.fixedHeaderBytes() + recordOverhead; size > s.cfg.MaxMessageBytes {
		b.arena = b.arena[:off]
		pr.reject(b, ln.Number, nil, fmt.Sprintf("record of about %d bytes exceeds KAFKA_MAX_MESSAGE_BYTES (%d)", size, s.cfg.MaxMessageBytes))
		return
	}
	p := schema.Partition(key, s.cfg.Partitions)
	lo := len(b.arena)
	b.arena = strconv.AppendInt(b.arena, ln.Number, 10)
	lineVal := b.arena[lo:len(b.arena):len(b.arena)]
	h := len(b.hdrs)
	b.hdrs = append(b.hdrs,
		kafka.Header{Key: schema.HeaderExport, Value: s.hExport},
		kafka.Header{Key: schema.HeaderGeneratedTime, Value: s.hGenerated},
		kafka.Header{Key: schema.HeaderRunID, Value: s.hRunID},
		kafka.Header{Key: schema.HeaderPart, Value: pr.hPart},
		kafka.Header{Key: schema.HeaderLine, Value: lineVal},
		kafka.Header{Key: schema.HeaderContentType, Value: s.hContentType},
	)
	b.msgs = append(b.msgs, kafka.Message{
		Topic:     s.cfg.Topic,
		Partition: p,
		Key:       key,
		Value:     val,
		Headers:   b.hdrs[h:len(b.hdrs):len(b.hdrs)],
	})
	b.meta = append(b.meta, msgMeta{line: ln.Number, kind: kindRecord})
	b.partCounts[p]++
	b.records++
}

func (pr *partRun) fixedHeaderBytes() int {
	s := pr.s
	return len(s.hExport) + len(s.hGenerated) + len(s.hRunID) + len(pr.hPart) + len(s.hContentType)
}

// reject counts a rejected line, logs it by position and adds its
// dead-letter message when a DLQ topic is set. raw is the line (nil when
// it must not or cannot be sent).
func (pr *partRun) reject(b *batch, line int64, raw []byte, reason string) {
	b.rejected++
	pr.log.Warn().Int64("line", line).Str("reason", reason).Msg("line rejected")
	if pr.s.cfg.DLQTopic == "" {
		return
	}
	b.msgs = append(b.msgs, pr.dlqMessage(b, line, raw, reason))
	b.meta = append(b.meta, msgMeta{line: line, kind: kindDLQ})
}

// dlqMessage builds the dead-letter message of a rejected line in b's
// arena. The value is the raw line, or empty when the line is too large to
// be sent (mde.error says why).
func (pr *partRun) dlqMessage(b *batch, line int64, raw []byte, reason string) kafka.Message {
	s := pr.s
	if raw != nil && len(raw)+len(reason)+pr.fixedHeaderBytes()+recordOverhead > s.cfg.MaxMessageBytes {
		raw = nil
		reason += " (line too large for the dead-letter topic: value omitted)"
	} else if raw == nil {
		reason += " (value omitted)"
	}
	off := len(b.arena)
	b.arena = append(b.arena, raw...)
	val := b.arena[off:len(b.arena):len(b.arena)]
	lo := len(b.arena)
	b.arena = strconv.AppendInt(b.arena, line, 10)
	lineVal := b.arena[lo:len(b.arena):len(b.arena)]
	eo := len(b.arena)
	b.arena = append(b.arena, reason...)
	errVal := b.arena[eo:len(b.arena):len(b.arena)]
	h := len(b.hdrs)
	b.hdrs = append(b.hdrs,
		kafka.Header{Key: schema.HeaderExport, Value: s.hExport},
		kafka.Header{Key: schema.HeaderGeneratedTime, Value: s.hGenerated},
		kafka.Header{Key: schema.HeaderRunID, Value: s.hRunID},
		kafka.Header{Key: schema.HeaderPart, Value: pr.hPart},
		kafka.Header{Key: schema.HeaderLine, Value: lineVal},
		kafka.Header{Key: schema.HeaderError, Value: errVal},
	)
	return kafka.Message{Topic: s.cfg.DLQTopic, Value: val, Headers: b.hdrs[h:len(b.hdrs):len(b.hdrs)]}
}

// write sends the batches of one part in order; a batch is recycled once
// every message in it is acknowledged.
func (pr *partRun) write(pctx, wctx context.Context, full <-chan *batch, free chan<- *batch) error {
	s := pr.s
	for {
		if pctx.Err() != nil {
			return pctx.Err()
		}
		var b *batch
		var ok bool
		select {
		case b, ok = <-full:
			if !ok {
				return nil
			}
		case <-pctx.Done():
			return pctx.Err()
		}
		if len(b.msgs) > 0 {
			xm, xmeta, err := pr.send(pctx, wctx, b, b.msgs, b.meta)
			if err == nil && len(xm) > 0 {
				_, _, err = pr.send(pctx, wctx, b, xm, xmeta)
			}
			if err != nil {
				return err
			}
			if err := pr.observe(b); err != nil {
				return err
			}
		}
		s.records.Add(b.records)
		s.rejected.Add(b.rejected)
		s.lineBytes.Add(b.lineBytes)
		for p, n := range b.partCounts {
			if n != 0 {
				s.partRecords[p].Add(n)
			}
		}
		b.reset()
		free <- b // capacity 2 = the part's batches: never blocks
	}
}

// send writes msgs until each is acknowledged or rejected as too large,
// retrying only the failed ones with backoff. Records refused as too large
// are turned into rejections of b; their dead-letter messages are returned
// to be sent next.
func (pr *partRun) send(stop, wctx context.Context, b *batch, msgs []kafka.Message, meta []msgMeta) (xm []kafka.Message, xmeta []msgMeta, err error) {
	s := pr.s
	pending := msgs
	var idx []int // pending[j] is msgs[idx[j]]; nil: pending is msgs
	at := func(j int) int {
		if idx == nil {
			return j
		}
		return idx[j]
	}
	backOff := s.newBackOff()
	for len(pending) > 0 {
		err := s.w.WriteMessages(wctx, pending...)
		if err == nil {
			return xm, xmeta, nil
		}
		var retry, tooLarge []int
		var lastErr error
		var werrs kafka.WriteErrors
		var mtl kafka.MessageTooLargeError
		switch {
		case errors.As(err, &werrs) && len(werrs) == len(pending):
			for j, e := range werrs {
				switch {
				case e == nil:
				case errors.Is(e, kafka.MessageSizeTooLarge):
					tooLarge = append(tooLarge, at(j))
				default:
					retry = append(retry, at(j))
					lastErr = e
				}
			}
		case errors.As(err, &mtl):
			// kafka-go refused locally before sending anything.
			found := -1
			for j := range pending {
				if sameMessage(&pending[j], &mtl.Message) {
					found = j
					break
				}
			}
			for j := range pending {
				switch {
				case j == found:
					tooLarge = append(tooLarge, at(j))
				default:
					retry = append(retry, at(j))
				}
			}
			if found < 0 {
				lastErr = err
			}
		default:
			for j := range pending {
				retry = append(retry, at(j))
			}
			lastErr = err
		}
		for _, i := range tooLarge {
			// kafka-go reports a batch's error for each of its messages:
			// send each alone to learn which one the broker refuses.
			ierr := pr.writeIsolated(wctx, msgs[i])
			switch {
			case ierr == nil:
			case errors.Is(ierr, kafka.MessageSizeTooLarge):
				if m, ok := pr.rejectTooLarge(b, &msgs[i], meta[i]); ok {
					xm = append(xm, m)
					xmeta = append(xmeta, msgMeta{line: meta[i].line, kind: kindDLQ})
				}
				if meta[i].kind == kindRecord {
					meta[i].kind = kindRefused // not published: no Observer.Record
				}
			default:
				retry = append(retry, i)
				lastErr = ierr
			}
		}
		slices.Sort(retry)
		idx = retry
		pending = make([]kafka.Message, len(retry))
		for j, i := range retry {
			pending[j] = msgs[i]
		}
		if len(pending) == 0 || lastErr == nil {
			continue
		}
		pr.log.Warn().Int("messages", len(pending)).Int64("line", meta[retry[0]].line).
			Str("error", redact(lastErr.Error())).Msg("write failed; retrying")
		if werr := s.wait(stop, backOff); werr != nil {
			return nil, nil, pr.partError(meta[retry[0]].line,
				fmt.Errorf("writing %d messages: %w (%v)", len(pending), lastErr, werr))
		}
	}
	return xm, xmeta, nil
}

func sameMessage(a, b *kafka.Message) bool {
	if len(a.Headers) == 0 || len(b.Headers) == 0 {
		return false
	}
	return &a.Headers[0] == &b.Headers[0]
}

func (pr *partRun) writeIsolated(ctx context.Context, msg kafka.Message) error {
	var err error
	if iw, ok := pr.s.w.(isolatedWriter); ok {
		err = iw.WriteIsolated(ctx, msg)
	} else {
		err = pr.s.w.WriteMessages(ctx, msg)
	}
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == 1 {
		return werrs[0]
	}
	return err
}

// rejectTooLarge turns a message the broker refused as too large into a
// rejection; it returns the dead-letter message to send, if any.
func (pr *partRun) rejectTooLarge(b *batch, m *kafka.Message, meta msgMeta) (kafka.Message, bool) {
	const reason = "refused by the broker: MESSAGE_TOO_LARGE"
	if meta.kind == kindDLQ {
		pr.log.Warn().Int64("line", meta.line).Str("reason", reason).Msg("dead-letter message dropped")
		return kafka.Message{}, false
	}
	b.records--
	b.partCounts[m.Partition]--
	b.rejected++
	pr.log.Warn().Int64("line", meta.line).Str("reason", reason).Msg("line rejected")
	if pr.s.cfg.DLQTopic == "" {
		return kafka.Message{}, false
	}
	return pr.dlqMessage(b, meta.line, nil, reason), true
}

// observe tells the snapshot's Observer about every acknowledged record of b.
func (pr *partRun) observe(b *batch) error {
	obs := pr.s.cfg.Observer
	if obs == nil {
		return nil
	}
	for i := range b.msgs {
		if b.meta[i].kind != kindRecord {
			continue
		}
		if err := obs.Record(pr.part.Index, b.meta[i].line, b.msgs[i].Key, b.msgs[i].Value); err != nil {
			return pr.partError(b.meta[i].line, err)
		}
	}
	return nil
}
