package producer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/pierrec/lz4/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// produceClient is the network side of a topicWriter: *Kafka, or the dry
// run's discardClient.
type produceClient interface {
	// initProducerID asks the brokers for a new idempotent producer id.
	initProducerID(ctx context.Context) (producerID, error)
	// produce sends one encoded record batch to the partition's leader
	// with acks=all. The error is the broker's (a kafka.Error) or the
	// transport's.
	produce(ctx context.Context, topic string, partition int, batch []byte) error
	// leader returns the partition's leader as the client knows it.
	leader(ctx context.Context, topic string, partition int) (int, error)
}

// refusal is what a topicWriter's owner does with a record the broker
// refused as too large: it accounts for it and may return a replacement
// record, sent in its place (a dead-letter message without its value).
type refusal func(kind recordKind, at position, rec decodedRecord, cause error) (replacement *decodedRecord, err error)

// writerConfig configures a topicWriter.
type writerConfig struct {
	topic        string
	partitions   int
	codec        kafka.Compression
	batchBytes   int           // a batch is sent when it holds this many bytes of records
	linger       time.Duration // or when its first record is this old
	writeTimeout time.Duration // one produce attempt
	retryInitial time.Duration
	retryMax     time.Duration // retries of one batch, since its last progress
	discard      bool          // dry run: nothing is encoded or sent
	onRefused    refusal
	// observe, when set, is called for every record (kindRecord) once it
	// is acknowledged, from the partition's sender; an error fails the
	// stream.
	observe func(at position, key, value []byte) error
	log     zerolog.Logger
}

// topicWriter publishes records to the partitions of one topic as one
// idempotent producer: every partition is a stream with one produce request
// in flight, and every batch carries the producer id and its base sequence,
// so that the broker appends a batch that is sent again (after a timeout, a
// cut connection or a leader change) only once. Records are appended to
// each partition in the order of the add calls.
type topicWriter struct {
	cfg     writerConfig
	client  produceClient
	pid     producerID
	streams []*stream

	sendCtx context.Context // produce attempts
	stopCtx context.Context // waiting: done when the writer stops
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// newTopicWriter obtains a producer id and starts one sender per
// partition. Produce attempts run on sendCtx; stopping the writer (or
// sendCtx ending) ends the senders.
func newTopicWriter(sendCtx context.Context, client produceClient, cfg writerConfig) (*topicWriter, error) {
	w := &topicWriter{cfg: cfg, client: client, sendCtx: sendCtx}
	if !cfg.discard {
		bo := backoff.WithContext(newExpBackOff(cfg.retryInitial, cfg.retryMax), sendCtx)
		err := backoff.RetryNotify(func() error {
			pid, err := client.initProducerID(sendCtx)
			if err != nil && !retryableProduceError(err) {
				return backoff.Permanent(err)
			}
			w.pid = pid
			return err
		}, bo, func(err error, d time.Duration) {
			cfg.log.Warn().Str("topic", cfg.topic).Err(err).Dur("retry_in", d).Msg("init producer id failed; retrying")
		})
		if err != nil {
			return nil, fmt.Errorf("kafka: obtaining an idempotent producer id for topic %q: %w", cfg.topic, err)
		}
	}
	w.stopCtx, w.stop = context.WithCancel(sendCtx)
	w.streams = make([]*stream, cfg.partitions)
	for p := range w.streams {
		s := &stream{w: w, partition: p, changed: make(chan struct{}), leader: -1}
		w.streams[p] = s
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			s.run()
		}()
	}
	return w, nil
}

// flush waits until every record added so far to any partition was
// acknowledged. It returns the partitions' failures.
func (w *topicWriter) flush(ctx context.Context) error {
	return errors.Join(w.flushEach(ctx)...)
}

// flushEach is flush with one result per partition.
func (w *topicWriter) flushEach(ctx context.Context) []error {
	errs := make([]error, len(w.streams))
	var wg sync.WaitGroup
	for i, s := range w.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.flush(ctx)
		}()
	}
	wg.Wait()
	return errs
}

// close stops the writer: records not yet sent are dropped, a request in
// flight ends (it has until sendCtx ends), and close returns when every
// sender has returned.
func (w *topicWriter) close() {
	for _, s := range w.streams {
		s.mu.Lock()
		s.closing = true
		s.cur.reset()
		s.notifyLocked()
		s.mu.Unlock()
	}
	w.stop()
	w.wg.Wait()
}

// records returns the records (kindRecord) acknowledged per partition.
func (w *topicWriter) records() []int64 {
	out := make([]int64, len(w.streams))
	for i, s := range w.streams {
		s.mu.Lock()
		out[i] = s.records
		s.mu.Unlock()
	}
	return out
}

// stream is one partition of a topicWriter.
type stream struct {
	w         *topicWriter
	partition int

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change below
	cur      recordBatch   // being filled
	spare    *recordBatch  // the other batch, nil while it is in flight
	inFlight recordBatch
	wantSend bool // an add waits for room: send cur now
	flushing int  // flush calls waiting
	closing  bool
	err      error // the stream failed; every add and flush returns it
	added    int64 // records of every kind added
	finished int64 // of those, acknowledged or refused
	records  int64 // kindRecord acknowledged

	// Owned by the sender goroutine.
	seq    int32          // base sequence of the next batch
	out    []byte         // encoded batch
	lz4    lz4.Compressor // its state is reused from batch to batch
	leader int            // last leader seen, -1 unknown
}

func (s *stream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait releases the lock until the stream changes or ctx is done; it
// returns with the lock held.
func (s *stream) wait(ctx context.Context) error {
	ch := s.changed
	s.mu.Unlock()
	select {
	case <-ch:
		s.mu.Lock()
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		return ctx.Err()
	}
}

// add appends one record, waiting while the partition's batch is full and
// the previous one is still in flight (the backpressure of the pipeline).
// Key, value and header values are copied.
func (s *stream) add(ctx context.Context, kind recordKind, at position, key, value []byte, nullValue bool, hdrs []header) error {
	size := recordSize(key, value, nullValue, hdrs, 0) + 5
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.err != nil:
			return s.err
		case s.closing:
			return errWriterClosed
		}
		if s.cur.len() == 0 || s.cur.size()+size <= s.w.cfg.batchBytes {
			break
		}
		if !s.wantSend {
			s.wantSend = true
			s.notifyLocked()
		}
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
	if s.cur.len() == 0 {
		s.cur.firstTS = time.Now().UnixMilli()
		s.notifyLocked() // the sender starts counting the linger
	}
	s.cur.add(kind, at, key, value, nullValue, hdrs)
	s.added++
	if s.cur.size() >= s.w.cfg.batchBytes && !s.wantSend {
		s.wantSend = true
		s.notifyLocked()
	}
	return nil
}

var errWriterClosed = errors.New("kafka writer closed")

// flush waits until every record added before the call is acknowledged.
func (s *stream) flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	target := s.added
	s.flushing++
	s.notifyLocked()
	defer func() { s.flushing-- }()
	for s.finished < target {
		if s.err != nil {
			return s.err
		}
		if s.closing {
			return errWriterClosed
		}
		if err := s.wait(ctx); err != nil {
			return fmt.Errorf("partition %d: %w", s.partition, err)
		}
	}
	return s.err
}

// run is the sender: it takes the filled batch, sends it until it is
// acknowledged and gives the buffer back.
func (s *stream) run() {
	s.spare = &s.inFlight
	for {
		b := s.next()
		if b == nil {
			return
		}
		err := s.send(b)
		s.mu.Lock()
		if err != nil && s.err == nil {
			s.err = err
		}
		b.reset()
		s.spare = b
		s.notifyLocked()
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// next waits for a batch to send: cur once it is full, flushed, or older
// than the linger. It returns nil when the writer stops.
func (s *stream) next() *recordBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if s.err != nil || s.closing {
			return nil
		}
		var lingerC <-chan time.Time
		if n := s.cur.len(); n > 0 {
			age := time.Since(time.UnixMilli(s.cur.firstTS))
			if s.wantSend || s.flushing > 0 || age >= s.w.cfg.linger || s.cur.size() >= s.w.cfg.batchBytes {
				// Swap: cur goes out, the spare becomes cur.
				out := s.spare
				*out, s.cur = s.cur, *out
				s.spare = nil
				s.wantSend = false
				s.notifyLocked()
				return out
			}
			if timer == nil {
				timer = time.NewTimer(s.w.cfg.linger - age)
			} else {
				timer.Reset(s.w.cfg.linger - age)
			}
			lingerC = timer.C
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-lingerC:
		case <-s.w.stopCtx.Done():
			s.mu.Lock()
			return nil
		}
		s.mu.Lock()
	}
}

// send publishes b, splitting it when the broker refuses it as too large,
// and accounts for its records.
func (s *stream) send(b *recordBatch) error {
	if s.w.cfg.discard {
		return s.account(b)
	}
	err := s.produce(b)
	if err == nil {
		return s.account(b)
	}
	if !errors.Is(err, kafka.MessageSizeTooLarge) && !errors.Is(err, kafka.RecordListTooLarge) {
		return err
	}
	if b.len() == 1 {
		return s.refused(b, err)
	}
	// Kafka refuses the whole batch: send each half on its own, down to
	// the one record that is too large.
	half := b.len() / 2
	for _, r := range [][2]int{{0, half}, {half, b.len()}} {
		nb := &recordBatch{firstTS: b.firstTS}
		for i := r[0]; i < r[1]; i++ {
			rec, derr := b.record(i)
			if derr != nil {
				return derr
			}
			nb.add(b.kinds[i], b.pos[i], rec.key, rec.value, rec.nullValue, rec.headers)
		}
		if err := s.send(nb); err != nil {
			return err
		}
	}
	return nil
}

// refused hands the single record of b that the broker refused to the
// writer's owner and sends its replacement, if any.
func (s *stream) refused(b *recordBatch, cause error) error {
	rec, err := b.record(0)
	if err != nil {
		return err
	}
	if s.w.cfg.onRefused == nil {
		return fmt.Errorf("partition %d: %w", s.partition, cause)
	}
	repl, err := s.w.cfg.onRefused(b.kinds[0], b.pos[0], rec, cause)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.finished++
	s.mu.Unlock()
	if repl == nil {
		return nil
	}
	nb := &recordBatch{firstTS: b.firstTS}
	nb.add(b.kinds[0], b.pos[0], repl.key, repl.value, repl.nullValue, repl.headers)
	if err := s.produce(nb); err != nil {
		if errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge) {
			s.w.cfg.log.Warn().Str("topic", s.w.cfg.topic).Int("partition", s.partition).Int64("line", b.pos[0].line).
				Msg("replacement of a refused message refused too; dropped")
			return nil
		}
		return err
	}
	return nil
}

// account counts the records of b as acknowledged, after telling the
// observer about each export record.
func (s *stream) account(b *recordBatch) error {
	var recs int64
	for i, k := range b.kinds {
		if k != kindRecord {
			continue
		}
		recs++
		if s.w.cfg.observe != nil {
			rec, err := b.keyValue(i)
			if err == nil {
				err = s.w.cfg.observe(b.pos[i], rec.key, rec.value)
			}
			if err != nil {
				return err
			}
		}
	}
	s.mu.Lock()
	s.finished += int64(b.len())
	s.records += recs
	s.mu.Unlock()
	return nil
}

// produce sends b until the broker acknowledges it, with the same producer
// id and base sequence on every attempt: the broker appends it once however
// often it is sent. Transient failures are retried with backoff until
// retryMax passes without success.
func (s *stream) produce(b *recordBatch) error {
	w := s.w
	out, err := encodeBatch(s.out, b, w.cfg.codec, &s.lz4, w.pid, s.seq)
	if err != nil {
		return err
	}
	s.out = out
	attempt := 0
	op := func() error {
		attempt++
		actx, cancel := context.WithTimeout(w.sendCtx, w.cfg.writeTimeout)
		err := w.client.produce(actx, w.cfg.topic, s.partition, out)
		cancel()
		switch {
		case err == nil, errors.Is(err, kafka.DuplicateSequenceNumber):
			// Duplicate: an earlier attempt was appended.
			return nil
		case w.sendCtx.Err() != nil:
			return backoff.Permanent(fmt.Errorf("partition %d: %w (%w)", s.partition, w.sendCtx.Err(), err))
		case !retryableProduceError(err):
			return backoff.Permanent(fmt.Errorf("partition %d: %w", s.partition, err))
		}
		return fmt.Errorf("partition %d: %w", s.partition, err)
	}
	bo := backoff.WithContext(newExpBackOff(w.cfg.retryInitial, w.cfg.retryMax), w.stopCtx)
	err = backoff.RetryNotify(op, bo, func(err error, d time.Duration) {
		ev := w.cfg.log.Warn()
		if errors.Is(err, errConnRetired) {
			// Expected: an OAUTHBEARER connection retired before its
			// token expires; the request goes on a new connection.
			ev = w.cfg.log.Debug()
		}
		ev.Str("topic", w.cfg.topic).Int("partition", s.partition).Int("attempt", attempt).
			Dur("retry_in", d).Str("error", err.Error()).Msg("produce failed; retrying")
		s.checkLeader()
	})
	if err != nil {
		if attempt > 1 {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		return err
	}
	s.seq += int32(b.len())
	if attempt > 1 || s.leader < 0 {
		s.checkLeader()
	}
	return nil
}

// checkLeader logs when the partition's leader differs from the last one
// seen.
func (s *stream) checkLeader() {
	ctx, cancel := context.WithTimeout(s.w.sendCtx, 5*time.Second)
	defer cancel()
	l, err := s.w.client.leader(ctx, s.w.cfg.topic, s.partition)
	if err != nil || l == s.leader {
		return
	}
	if s.leader >= 0 {
		s.w.cfg.log.Info().Str("topic", s.w.cfg.topic).Int("partition", s.partition).
			Int("leader", l).Int("previous_leader", s.leader).Msg("partition leader changed")
	}
	s.leader = l
}

// retryableProduceError tells a failure worth sending the same batch again
// for: a broker error that Kafka marks retriable (leader change, request
// timed out, not enough replicas, …) or any failure of the connection
// (reset, cut, timeout, refused while a broker restarts). Everything else
// (authorization, unknown producer, out-of-order sequence, invalid record)
// fails the batch.
func retryableProduceError(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// Connection failures surface as io.EOF, io.ErrUnexpectedEOF,
	// syscall errors or context deadlines of the attempt: all transient.
	return !errors.Is(err, context.Canceled)
}

func newExpBackOff(initial, maxElapsed time.Duration) *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = initial
	bo.MaxInterval = 5 * time.Second
	bo.MaxElapsedTime = maxElapsed
	bo.Reset()
	return bo
}

// discardClient is the dry run's client: it acknowledges everything.
type discardClient struct{}

func (discardClient) initProducerID(context.Context) (producerID, error) { return producerID{}, nil }
func (discardClient) produce(context.Context, string, int, []byte) error { return nil }
func (discardClient) leader(context.Context, string, int) (int, error)   { return 0, nil }
