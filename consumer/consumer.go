package consumer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/rs/zerolog"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// From is where a Reader starts in every partition.
type From int

const (
	// FromNewestSnapshot starts at the newest snapshot-start of each
	// partition (the default): the newest snapshot and whatever follows.
	FromNewestSnapshot From = iota
	// FromBeginning reads every partition from its first offset: every
	// snapshot the topic still holds, oldest first.
	FromBeginning
)

// ErrNoTopic is returned for a topic that does not exist.
var ErrNoTopic = wire.ErrNoTopic

// Config configures a Reader. Brokers is required; everything else has a
// default.
type Config struct {
	// Brokers are host:port bootstrap addresses.
	Brokers []string
	// Topic is the records topic tvm2kafka writes (required).
	Topic string
	// TLS, when set, connects to the brokers with TLS.
	TLS *tls.Config
	// SASL authenticates to the brokers when its Mechanism is set.
	SASL SASL
	// From is where reading starts (default FromNewestSnapshot).
	From From
	// NewStage returns the stage that collects the records of partition's
	// share of the run that start opens. nil stages records in memory:
	// Share.Records then holds them. Stages of different partitions are
	// used concurrently.
	NewStage func(partition int, start Marker) Stage
	// FetchBytes bounds one fetch response (default 1 MiB). A response is
	// read whole; its record batches are decompressed one at a time.
	FetchBytes int
	// Concurrency is the number of partitions read at once (default 4).
	Concurrency int
	// Timeout bounds one request to the brokers (default 30s).
	Timeout time.Duration
}

// SASL is how a Reader authenticates to the brokers.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
	Mechanism string
	// Username and Password, for PLAIN and SCRAM.
	Username, Password string
	// Token yields the bearer tokens of OAUTHBEARER, with their expiry
	// (connections are retired before it).
	Token func(ctx context.Context) (token string, expiresOn time.Time, err error)
}

// Header is one header of a record: a key and a value (nil: no value).
// It is the type the reading code decodes into, so that no record's
// headers are copied on the way to a Stage.
type Header = wire.Header

// Record is one record message of a snapshot.
type Record struct {
	Partition int
	Offset    int64
	// Time is the Kafka message timestamp.
	Time time.Time
	// Key is the DeviceId, Value the device's line exactly as in the export.
	Key, Value []byte
	Headers    []Header
}

// Header returns the value of the header named key.
func (r *Record) Header(key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}

// Marker is a snapshot marker message: its JSON value and where it is.
type Marker struct {
	schema.Marker
	// Offset of the marker in its partition.
	Offset int64
	// Timestamp is the Kafka message timestamp.
	Timestamp time.Time
}

// Stage collects the records of one partition's share of one run while it
// is read. Add is called in offset order for every record of the run
// between its snapshot-start and its snapshot-end; r's slices are valid
// only during the call. A stage whose share is thrown away is handed to
// Handler.Discard (Discard.Stage), so that what it kept can be rolled
// back.
type Stage interface {
	Add(r *Record) error
}

// MemoryStage keeps copies of the records it is given; it is the default
// stage.
type MemoryStage struct {
	Records []Record
}

// Add copies r into s.
func (s *MemoryStage) Add(r *Record) error {
	c := *r
	c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	c.Headers = make([]Header, len(r.Headers))
	for i, h := range r.Headers {
		c.Headers[i] = Header{Key: h.Key, Value: bytes.Clone(h.Value)}
	}
	s.Records = append(s.Records, c)
	return nil
}

// Share is one partition's complete share of one snapshot.
type Share struct {
	Partition                    int
	RunID, Export, GeneratedTime string
	// Start and End are the run's snapshot-start and snapshot-end in the
	// partition.
	Start, End Marker
	// Count is the number of records of the run between them; it equals
	// End's partitionRecords.
	Count int64
	// Stage is the stage that collected the records.
	Stage Stage
	// Records holds the records when they were staged in memory (no
	// Config.NewStage); nil otherwise.
	Records []Record
}

// Snapshot is a complete snapshot: every partition holds its share.
type Snapshot struct {
	RunID, Export, GeneratedTime string
	// Parts is the number of part files of the export; Records the
	// records of the whole snapshot and Rejected the lines the run
	// rejected, as snapshot-end states them.
	Parts             int
	Records, Rejected int64
	// Shares are the partitions' shares, by partition.
	Shares []*Share
}

// DiscardReason tells why a partition's share was thrown away.
type DiscardReason string

// The reasons a share is discarded.
const (
	// Aborted: the run wrote snapshot-abort.
	Aborted DiscardReason = "aborted"
	// Superseded: a newer run's snapshot-start came before the run's end.
	Superseded DiscardReason = "superseded"
	// CountMismatch: snapshot-end's partitionRecords differs from the
	// number of records of the run between the markers.
	CountMismatch DiscardReason = "count mismatch"
)

// Discard reports a partition's share that was thrown away.
type Discard struct {
	Partition int
	RunID     string
	Reason    DiscardReason
	// Marker is the marker that ended the share: the abort, the end with
	// the wrong count, or the newer start.
	Marker Marker
	// Staged is the number of records staged until then, Stage the stage
	// that holds them (to roll back what it kept).
	Staged int64
	Stage  Stage
}

// Handler receives what a Reader finds. Every field is optional. Calls are
// never concurrent; an error stops the Reader and is returned.
type Handler struct {
	Share    func(ctx context.Context, s *Share) error
	Snapshot func(ctx context.Context, s *Snapshot) error
	Discard  func(ctx context.Context, d Discard) error
}

// PartitionStatus describes the newest snapshot a Reader saw in one
// partition.
type PartitionStatus struct {
	Partition int
	// First and End are the partition's offsets when it was first read
	// (log start and high watermark); From is where reading began.
	First, End, From int64
	// RunID is the run of the newest snapshot-start read ("" when none
	// was found); Start is that marker.
	RunID string
	Start *Marker
	// Finish is that run's snapshot-end or snapshot-abort, nil while the
	// run has neither in the partition.
	Finish *Marker
	// Records counts that run's records after its snapshot-start (up to
	// Finish, or to the end of what was read).
	Records int64
	// Ignored counts records read that belonged to no staged run.
	Ignored int64
}

// Complete reports whether the partition holds a complete share of RunID:
// its snapshot-start, its snapshot-end, and partitionRecords records of the
// run between them.
func (p *PartitionStatus) Complete() bool {
	return p.Start != nil && p.Finish != nil && p.Finish.Marker.Kind == schema.MarkerEnd &&
		p.Finish.PartitionRecords != nil && *p.Finish.PartitionRecords == p.Records
}

// Status is what a Reader has seen so far.
type Status struct {
	// Partitions by partition number.
	Partitions []PartitionStatus
	// Fetches, Messages and Bytes count what was read from the brokers:
	// fetch requests, messages decoded, and the bytes of their keys and
	// values.
	Fetches, Messages, Bytes int64
}

// Reader reads a tvm2kafka topic. It keeps its position: each Read
// continues where the previous one stopped. A Reader is not safe for
// concurrent calls of Read and Follow.
type Reader struct {
	cfg   Config
	k     *wire.Kafka
	scan  *wire.Scanner
	probe *wire.Scanner // one batch per fetch: reads single messages
	stats wire.Stats

	mu      sync.Mutex // serialises Handler calls and the topic-wide state
	parts   []*partState
	pending map[string]*pendingRun // runs with complete shares in some partitions
	seq     []int64                // per partition, complete shares so far
}

// pendingRun holds the complete shares of one run until every partition
// has its share. seq[p] orders the share among partition p's shares.
type pendingRun struct {
	shares []*Share
	seq    []int64
}

// NewReader checks cfg and returns a Reader. It makes no network call.
func NewReader(cfg Config) (*Reader, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("consumer: no brokers")
	}
	if cfg.Topic == "" {
		return nil, errors.New("consumer: no topic")
	}
	if cfg.From != FromNewestSnapshot && cfg.From != FromBeginning {
		return nil, fmt.Errorf("consumer: unknown From %d", cfg.From)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.FetchBytes <= 0 {
		cfg.FetchBytes = 1 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	wc := wire.Config{Brokers: cfg.Brokers, Topic: cfg.Topic, WriteTimeout: cfg.Timeout}
	wc.TLS, wc.TLSConfig = cfg.TLS != nil, cfg.TLS
	wc.SASLMechanism, wc.SASLUsername, wc.SASLPassword = cfg.SASL.Mechanism, cfg.SASL.Username, cfg.SASL.Password
	if cfg.SASL.Token != nil {
		wc.OAuthToken = cfg.SASL.Token
	}
	k, err := wire.NewKafka(wc, zerolog.Nop())
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	r := &Reader{cfg: cfg, k: k, pending: map[string]*pendingRun{}}
	r.scan = k.Scanner(cfg.Topic, cfg.FetchBytes, &r.stats)
	probe := *r.scan
	probe.MaxBytes = 1 // the broker still returns the first batch whole
	r.probe = &probe
	return r, nil
}

// Read reads every partition from its position (at the first call: the
// newest snapshot-start, or the beginning) up to the end offsets the
// partitions have when Read is called, and hands over what it completes.
// It returns the status of the newest snapshot of every partition.
func (r *Reader) Read(ctx context.Context, h Handler) (*Status, error) {
	parts, err := r.k.Partitions(ctx, r.cfg.Topic)
	if err != nil {
		return nil, err
	}
	if err := r.init(ctx, parts); err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	for _, ps := range r.parts {
		end := parts[ps.status.Partition].End
		g.Go(func() error {
			return r.scan.Scan(gctx, ps.status.Partition, ps.next, end, func(m *wire.Message) error {
				return r.handle(gctx, ps, m, h)
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return r.Status(), nil
}

// Follow reads like Read and then keeps reading new messages as they are
// written, until ctx is done; it returns ctx's error or the first failure.
// Every partition is followed at once, and Concurrency bounds the fetches
// in flight (a partition waits its turn, so that a topic with many
// partitions does not hold as many fetch responses in memory).
func (r *Reader) Follow(ctx context.Context, h Handler) error {
	parts, err := r.k.Partitions(ctx, r.cfg.Topic)
	if err != nil {
		return err
	}
	if err := r.init(ctx, parts); err != nil {
		return err
	}
	scan := *r.scan
	scan.Gate = semaphore.NewWeighted(int64(r.cfg.Concurrency))
	g, gctx := errgroup.WithContext(ctx)
	for _, ps := range r.parts {
		g.Go(func() error {
			return scan.Scan(gctx, ps.status.Partition, ps.next, -1, func(m *wire.Message) error {
				return r.handle(gctx, ps, m, h)
			})
		})
	}
	return g.Wait()
}

// Status returns what the Reader has seen so far.
func (r *Reader) Status() *Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &Status{
		Fetches:  r.stats.Fetches.Load(),
		Messages: r.stats.Messages.Load(),
		Bytes:    r.stats.Bytes.Load(),
	}
	for _, ps := range r.parts {
		st.Partitions = append(st.Partitions, ps.status)
	}
	return st
}

// init positions every partition at the first call.
func (r *Reader) init(ctx context.Context, parts []wire.Partition) error {
	if r.parts != nil {
		if len(parts) != len(r.parts) {
			return fmt.Errorf("consumer: topic %q now has %d partitions, not %d", r.cfg.Topic, len(parts), len(r.parts))
		}
		return nil
	}
	if len(parts) == 0 {
		return fmt.Errorf("consumer: topic %q has no partitions", r.cfg.Topic)
	}
	states := make([]*partState, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	for i, p := range parts {
		states[i] = &partState{status: PartitionStatus{Partition: p.ID, First: p.First, End: p.End}}
		g.Go(func() error {
			from := p.First
			if r.cfg.From == FromNewestSnapshot {
				var err error
				if from, err = r.locate(gctx, p); err != nil {
					return err
				}
			}
			states[i].next, states[i].status.From = from, from
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.parts = states
	r.seq = make([]int64, len(parts))
	return nil
}

// partState is the protocol state of one partition. Only the goroutine
// reading the partition touches it, except status (under Reader.mu).
type partState struct {
	next   int64 // next offset to read
	open   *staging
	status PartitionStatus
}

// staging is the share being collected.
type staging struct {
	runID string
	start Marker
	stage Stage
	mem   *MemoryStage // == stage when staged in memory
	count int64
}

// handle applies the protocol to one message of ps's partition.
func (r *Reader) handle(ctx context.Context, ps *partState, m *wire.Message, h Handler) error {
	ps.next = m.Offset + 1
	if string(m.Key) != schema.MarkerKey {
		return r.record(ps, m)
	}
	var mk Marker
	if err := json.Unmarshal(m.Value, &mk.Marker); err != nil || mk.RunID == "" {
		r.mu.Lock()
		ps.status.Ignored++ // not a marker tvm2kafka wrote
		r.mu.Unlock()
		return nil
	}
	mk.Offset, mk.Timestamp = m.Offset, m.Time
	switch mk.Marker.Kind {
	case schema.MarkerStart:
		if ps.open != nil && ps.open.runID == mk.RunID {
			return nil // the same start again
		}
		if old := ps.open; old != nil {
			ps.open = nil
			if err := r.discard(ctx, h, Discard{Partition: m.Partition, RunID: old.runID, Reason: Superseded, Marker: mk, Staged: old.count, Stage: old.stage}); err != nil {
				return err
			}
		}
		st := &staging{runID: mk.RunID, start: mk}
		if r.cfg.NewStage != nil {
			st.stage = r.cfg.NewStage(m.Partition, mk)
		} else {
			st.mem = &MemoryStage{}
			st.stage = st.mem
		}
		ps.open = st
		r.mu.Lock()
		start := mk
		ps.status.RunID, ps.status.Start, ps.status.Finish, ps.status.Records = mk.RunID, &start, nil, 0
		r.mu.Unlock()
	case schema.MarkerEnd, schema.MarkerAbort:
		st := ps.open
		if st == nil || st.runID != mk.RunID {
			return nil // the end of a run that is not staged
		}
		ps.open = nil
		r.mu.Lock()
		finish := mk
		ps.status.Finish = &finish
		r.mu.Unlock()
		if mk.Marker.Kind == schema.MarkerAbort {
			return r.discard(ctx, h, Discard{Partition: m.Partition, RunID: st.runID, Reason: Aborted, Marker: mk, Staged: st.count, Stage: st.stage})
		}
		if mk.PartitionRecords == nil || *mk.PartitionRecords != st.count {
			return r.discard(ctx, h, Discard{Partition: m.Partition, RunID: st.runID, Reason: CountMismatch, Marker: mk, Staged: st.count, Stage: st.stage})
		}
		share := &Share{
			Partition: m.Partition, RunID: st.runID, Export: st.start.Export, GeneratedTime: st.start.GeneratedTime,
			Start: st.start, End: mk, Count: st.count, Stage: st.stage,
		}
		if st.mem != nil {
			share.Records = st.mem.Records
		}
		return r.complete(ctx, h, share)
	}
	return nil
}

func (r *Reader) record(ps *partState, m *wire.Message) error {
	st := ps.open
	run, _ := m.Header(schema.HeaderRunID)
	if st == nil || string(run) != st.runID {
		r.mu.Lock()
		ps.status.Ignored++
		r.mu.Unlock()
		return nil
	}
	st.count++
	r.mu.Lock()
	ps.status.Records++
	r.mu.Unlock()
	rec := Record{Partition: m.Partition, Offset: m.Offset, Time: m.Time, Key: m.Key, Value: m.Value, Headers: m.Headers()}
	if err := st.stage.Add(&rec); err != nil {
		return fmt.Errorf("consumer: staging partition %d offset %d: %w", m.Partition, m.Offset, err)
	}
	return nil
}

func (r *Reader) discard(ctx context.Context, h Handler, d Discard) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, d.RunID) // the run can no longer be complete
	if h.Discard == nil {
		return nil
	}
	return h.Discard(ctx, d)
}

// complete hands over a partition's share and, when every partition holds
// a complete share of the same run, the whole snapshot. Partitions are read
// concurrently, so shares of several runs may wait for each other.
func (r *Reader) complete(ctx context.Context, h Handler, s *Share) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.parts)
	r.seq[s.Partition]++
	pr := r.pending[s.RunID]
	if pr == nil {
		pr = &pendingRun{shares: make([]*Share, n), seq: make([]int64, n)}
		r.pending[s.RunID] = pr
	}
	pr.shares[s.Partition], pr.seq[s.Partition] = s, r.seq[s.Partition]
	if h.Share != nil {
		if err := h.Share(ctx, s); err != nil {
			return err
		}
	}
	for _, sh := range pr.shares {
		if sh == nil {
			return nil
		}
	}
	delete(r.pending, s.RunID)
	// Runs older than this one in every partition where they have a share
	// can no longer be complete: a partition moved on past them.
	for run, other := range r.pending {
		newer := false
		for p := range n {
			newer = newer || other.seq[p] > pr.seq[p]
		}
		if !newer {
			delete(r.pending, run)
		}
	}
	snap := wholeSnapshot(pr.shares)
	if snap == nil || h.Snapshot == nil {
		return nil
	}
	return h.Snapshot(ctx, snap)
}

// wholeSnapshot returns the snapshot of one run's shares (one per
// partition) when their markers agree with each other and with the counts;
// nil otherwise.
func wholeSnapshot(shares []*Share) *Snapshot {
	first := shares[0]
	if first.End.Records == nil {
		return nil
	}
	var sum int64
	for _, s := range shares {
		if s.End.Records == nil || *s.End.Records != *first.End.Records || s.End.Partitions != len(shares) {
			return nil
		}
		sum += s.Count
	}
	if sum != *first.End.Records {
		return nil
	}
	snap := &Snapshot{
		RunID: first.RunID, Export: first.Export, GeneratedTime: first.GeneratedTime, Parts: first.End.Parts,
		Records: sum, Shares: append([]*Share(nil), shares...),
	}
	if first.End.Rejected != nil {
		snap.Rejected = *first.End.Rejected
	}
	return snap
}

// Close closes the Reader's idle connections.
func (r *Reader) Close() error { return r.k.Close() }
