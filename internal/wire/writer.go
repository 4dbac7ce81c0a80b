package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/pierrec/lz4/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// Producer is the network side of a Writer: *Kafka, or the dry
// run's discardClient.
type Producer interface {
	// InitProducerID asks the brokers for a new idempotent producer id.
	InitProducerID(ctx context.Context) (ProducerID, error)
	// Produce sends one encoded record batch to the partition's leader
	// with acks=all. The error is the broker's (a kafka.Error) or the
	// transport's.
	Produce(ctx context.Context, topic string, partition int, batch []byte) error
	// Leader returns the partition's Leader as the client knows it.
	Leader(ctx context.Context, topic string, partition int) (int, error)
}

// Refusal is what a Writer's owner does with a record the broker
// refused as too large: it accounts for it and may return a replacement
// record, sent in its place (a dead-letter message without its value).
type Refusal func(kind Kind, at Position, rec Record, cause error) (replacement *Record, err error)

// WriterConfig configures a Writer.
type WriterConfig struct {
	Topic        string
	Partitions   int
	codec        kafka.Compression
	BatchBytes   int           // a batch is sent when it holds this many bytes of records
	Linger       time.Duration // or when its first record is this old
	WriteTimeout time.Duration // one produce attempt
	RetryInitial time.Duration
	RetryMax     time.Duration // retries of one batch, since its last progress
	Discard      bool          // dry run: nothing is encoded or sent
	OnRefused    Refusal
	// Observe, when set, is called for every record (KindRecord) once it
	// is acknowledged, from the partition's sender, with the value of the
	// record's last header (nil when it has none); an error fails the
	// stream.
	Observe func(at Position, key, value, lastHeader []byte) error
	Log     zerolog.Logger
}

// Writer publishes records to the partitions of one topic as one
// idempotent producer: every partition is a stream with one produce request
// in flight, and every batch carries the producer id and its base sequence,
// so that the broker appends a batch that is sent again (after a timeout, a
// cut connection or a leader change) only once. Records are appended to
// each partition in the order of the add calls.
type Writer struct {
	cfg     WriterConfig
	client  Producer
	pid     ProducerID
	streams []*stream

	sendCtx context.Context // produce attempts
	stopCtx context.Context // waiting: done when the writer stops
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// NewWriter obtains a producer id and starts one sender per
// partition. Produce attempts run on sendCtx; stopping the writer (or
// sendCtx ending) ends the senders.
func NewWriter(sendCtx context.Context, client Producer, cfg WriterConfig) (*Writer, error) {
	w := &Writer{cfg: cfg, client: client, sendCtx: sendCtx}
	if !cfg.Discard {
		err := Retry(sendCtx, cfg.backoff(), func() error {
			pid, err := client.InitProducerID(sendCtx)
			w.pid = pid
			return err
		}, func(err error, d time.Duration) {
			cfg.Log.Warn().Str("topic", cfg.Topic).Err(err).Dur("retry_in", d).Msg("init producer id failed; retrying")
		})
		if err != nil {
			return nil, fmt.Errorf("kafka: obtaining an idempotent producer id for topic %q: %w", cfg.Topic, err)
		}
	}
	w.stopCtx, w.stop = context.WithCancel(sendCtx)
	w.streams = make([]*stream, cfg.Partitions)
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

// Flush waits until every record added so far to any partition was
// acknowledged. It returns the partitions' failures.
func (w *Writer) Flush(ctx context.Context) error {
	return errors.Join(w.FlushEach(ctx)...)
}

// FlushEach is flush with one result per partition.
func (w *Writer) FlushEach(ctx context.Context) []error {
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

// Close stops the writer: records not yet sent are dropped, a request in
// flight ends (it has until sendCtx ends), and Close returns when every
// sender has returned.
func (w *Writer) Close() {
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

// Records returns the records (KindRecord) acknowledged per partition.
func (w *Writer) Records() []int64 {
	out := make([]int64, len(w.streams))
	for i, s := range w.streams {
		s.mu.Lock()
		out[i] = s.records
		s.mu.Unlock()
	}
	return out
}

// stream is one partition of a Writer.
type stream struct {
	w         *Writer
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
	records  int64 // KindRecord acknowledged

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
func (s *stream) add(ctx context.Context, kind Kind, at Position, key, value []byte, nullValue bool, hdrs []Header) error {
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
		if s.cur.len() == 0 || s.cur.size()+size <= s.w.cfg.BatchBytes {
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
	if s.cur.size() >= s.w.cfg.BatchBytes && !s.wantSend {
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
			if s.wantSend || s.flushing > 0 || age >= s.w.cfg.Linger || s.cur.size() >= s.w.cfg.BatchBytes {
				// Swap: cur goes out, the spare becomes cur.
				out := s.spare
				*out, s.cur = s.cur, *out
				s.spare = nil
				s.wantSend = false
				s.notifyLocked()
				return out
			}
			if timer == nil {
				timer = time.NewTimer(s.w.cfg.Linger - age)
			} else {
				timer.Reset(s.w.cfg.Linger - age)
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
	if s.w.cfg.Discard {
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
			nb.add(b.kinds[i], b.pos[i], rec.Key, rec.Value, rec.NullValue, rec.Headers)
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
	if s.w.cfg.OnRefused == nil {
		return fmt.Errorf("partition %d: %w", s.partition, cause)
	}
	repl, err := s.w.cfg.OnRefused(b.kinds[0], b.pos[0], rec, cause)
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
	nb.add(b.kinds[0], b.pos[0], repl.Key, repl.Value, repl.NullValue, repl.Headers)
	if err := s.produce(nb); err != nil {
		if errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge) {
			s.w.cfg.Log.Warn().Str("topic", s.w.cfg.Topic).Int("partition", s.partition).Int64("line", b.pos[0].Line).
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
		if k != KindRecord {
			continue
		}
		recs++
		if s.w.cfg.Observe != nil {
			rec, last, err := b.keyValueLast(i)
			if err == nil {
				err = s.w.cfg.Observe(b.pos[i], rec.Key, rec.Value, last)
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
		actx, cancel := context.WithTimeout(w.sendCtx, w.cfg.WriteTimeout)
		err := w.client.Produce(actx, w.cfg.Topic, s.partition, out)
		cancel()
		switch {
		case err == nil, errors.Is(err, kafka.DuplicateSequenceNumber):
			// Duplicate: an earlier attempt was appended.
			return nil
		case w.sendCtx.Err() != nil:
			return backoff.Permanent(fmt.Errorf("partition %d: %w (%w)", s.partition, w.sendCtx.Err(), err))
		case !IsRetryable(err):
			return backoff.Permanent(fmt.Errorf("partition %d: %w", s.partition, err))
		}
		return fmt.Errorf("partition %d: %w", s.partition, err)
	}
	err = Retry(w.stopCtx, w.cfg.backoff(), op, func(err error, d time.Duration) {
		ev := w.cfg.Log.Warn()
		if errors.Is(err, errConnRetired) {
			// Expected: an OAUTHBEARER connection retired before its
			// token expires; the request goes on a new connection.
			ev = w.cfg.Log.Debug()
		}
		ev.Str("topic", w.cfg.Topic).Int("partition", s.partition).Int("attempt", attempt).
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
	l, err := s.w.client.Leader(ctx, s.w.cfg.Topic, s.partition)
	if err != nil || l == s.leader {
		return
	}
	if s.leader >= 0 {
		s.w.cfg.Log.Info().Str("topic", s.w.cfg.Topic).Int("partition", s.partition).
			Int("leader", l).Int("previous_leader", s.leader).Msg("partition leader changed")
	}
	s.leader = l
}

// backoff is the retry loop of one batch (or producer id), given up
// RetryMax after its last progress.
func (c WriterConfig) backoff() Backoff {
	return Backoff{Initial: c.RetryInitial, Max: 5 * time.Second, MaxElapsed: c.RetryMax}
}

// discardClient is the dry run's client: it acknowledges everything.
type discardClient struct{}

func (discardClient) InitProducerID(context.Context) (ProducerID, error) { return ProducerID{}, nil }
func (discardClient) Produce(context.Context, string, int, []byte) error { return nil }
func (discardClient) Leader(context.Context, string, int) (int, error)   { return 0, nil }

// Sink is where a Writer sends its batches: a *Kafka, or Discard() for a
// dry run. WriterDefaults is the writer configuration of its settings
// (codec, batch size, linger, timeouts); a caller fills in the topic.
type Sink interface {
	Producer
	WriterDefaults() WriterConfig
}

// Discard returns a Sink that acknowledges everything and keeps nothing:
// the dry run's. Records are still framed, checked and batched per
// partition; no batch is encoded or sent.
func Discard() Sink { return discardClient{} }

// WriterDefaults implements Sink.
func (discardClient) WriterDefaults() WriterConfig {
	return WriterConfig{BatchBytes: DefaultBatchBytes, Linger: DefaultBatchTimeout, WriteTimeout: DefaultWriteTimeout, Discard: true}
}

// Add appends one record to partition p, waiting while the partition's
// batch is full and the previous one is still in flight (the backpressure
// of the pipeline). Key, value and header values are copied. kind says
// how it is accounted (KindRecord: counted in Records and observed), at
// where it comes from (for Refusal and Observe).
func (w *Writer) Add(ctx context.Context, p int, kind Kind, at Position, key, value []byte, nullValue bool, hdrs []Header) error {
	return w.streams[p].add(ctx, kind, at, key, value, nullValue, hdrs)
}
