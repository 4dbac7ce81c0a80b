package table

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"golang.org/x/sync/errgroup"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// HeaderChange is the header of every table record: what happened to the
// device in this snapshot.
const HeaderChange = "mde.change"

// The values of HeaderChange.
const (
	Added   = "added"
	Changed = "changed"
	Removed = "removed"
)

// Defaults of Config.
const (
	DefaultBufferBytes = 32 << 20
	// spillBytes is the size of one batch written while the snapshot is
	// published, once the buffer has overflowed.
	spillBytes = 2 << 20
	// writeChunk is the number of messages per Writer.Write call.
	writeChunk = 2000
	// loadFetchBytes bounds one fetch of the table read-back: a response
	// is read whole, and its batches are decompressed one at a time.
	loadFetchBytes = 4 << 20
	// maxLoadConcurrency bounds the partitions read back at once (one per
	// CPU, at least two: one decodes while the broker answers the other).
	maxLoadConcurrency = 4
	// maxMappedLog bounds the log of one partition mapped outside the Go
	// heap while it is read back (48 bytes per record, committed only as
	// records are read); a larger partition's log grows on the heap.
	maxMappedLog = 1 << 24
)

// Writer writes messages to the table topic and returns when every one is
// acknowledged (acks=all) or failed. Its failures are final: it retries
// transient broker errors itself (*wire.KeyedWriter does).
type Writer interface {
	Write(ctx context.Context, msgs []wire.KeyedMessage) error
}

// Config configures the table of one run.
type Config struct {
	// Topic is the table topic.
	Topic string
	// Export, GeneratedTime and RunID are the run's, for the headers.
	Export, GeneratedTime, RunID string
	// Kafka reads the table back; Writer writes it.
	Kafka  *wire.Kafka
	Writer Writer
	// BufferBytes bounds the changes held until the snapshot is complete
	// (default DefaultBufferBytes).
	BufferBytes int
	// Logger receives the table's log lines (with the run's context).
	Logger zerolog.Logger
}

// Stats are the figures of one run's table update.
type Stats struct {
	// Devices in the table when it was read; Read records read back;
	// Foreign records left alone; Misplaced records found in a partition
	// their key does not hash to.
	Devices, Read, Foreign, Misplaced int64
	// What the snapshot changed; Duplicates counts lines whose DeviceId
	// occurred before in the snapshot.
	Added, Changed, Removed, Unchanged, Duplicates int64
	LoadDuration, CompleteDuration                 time.Duration
}

// Table is the table topic during one run: Load, then Record for every
// record of the snapshot (concurrently), then Complete. It implements the
// snapshot pipeline's Observer.
type Table struct {
	cfg  Config
	log  zerolog.Logger
	hash hasher
	n    int // partitions of the table topic
	hExport, hGenerated, hRunID,
	hContentType []byte

	parts     []partState
	loadParts []wire.Partition // the ranges Load read
	natural   bool             // keyed by natural key (an export with several records per device)
	keyReader sync.Pool        // of *schema.Keys, natural only
	newKeys   *newKeys
	oddMu     sync.Mutex
	odd       map[string]*oddEntry
	misplaced []misplacedKey

	bufMu     sync.Mutex
	buf       *buffer
	bufBytes  int
	spilled   bool // the buffer overflowed: changes are written at once
	spillDone bool // spill is closed
	spill     chan *buffer
	spillWG   sync.WaitGroup
	spillErr  atomic.Pointer[error]
	wctx      context.Context // context of the writes during the snapshot
	wcancel   context.CancelFunc

	dupMu sync.Mutex
	dups  map[string]*dup

	added, changed, unchanged, duplicates atomic.Int64
	stats                                 Stats
	loaded                                bool
	bytesRead                             int64
	firstForeign, firstForeignAt          string // the first foreign record's key and place
}

type misplacedKey struct {
	key       string
	partition int
}

// dup is a DeviceId that occurs more than once in the snapshot: the first
// occurrence was handled as any line (first is its claim); the last
// occurrence in export order wins.
type dup struct {
	first   uint64 // the first occurrence's claim
	pos     uint64 // position of the best later occurrence
	value   []byte
	d       digest
	part    int
	line    int64
	inTable bool
	table   digest
}

// New returns the table of one run; Load must be called before Record.
func New(cfg Config) (*Table, error) {
	switch {
	case cfg.Topic == "":
		return nil, errors.New("table: no topic")
	case cfg.Kafka == nil || cfg.Writer == nil:
		return nil, errors.New("table: no client or writer")
	case cfg.RunID == "":
		return nil, errors.New("table: no run id")
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	cols := schema.KeysOf(cfg.Export)
	t := &Table{
		cfg:          cfg,
		log:          cfg.Logger.With().Str("table_topic", cfg.Topic).Logger(),
		hash:         newHasher(),
		hExport:      []byte(cfg.Export),
		hGenerated:   []byte(cfg.GeneratedTime),
		hRunID:       []byte(cfg.RunID),
		hContentType: []byte(schema.ContentTypeJSON),
		odd:          map[string]*oddEntry{},
		newKeys:      newNewKeys(),
		dups:         map[string]*dup{},
		buf:          &buffer{},
		natural:      len(cols) > 1,
	}
	t.keyReader.New = func() any { return schema.NewKeys(cols) }
	return t, nil
}

// naturalKey reports whether key has the shape of a natural key encoding
// (a JSON object whose first member is DeviceId).
func naturalKey(key []byte) bool {
	return bytes.HasPrefix(key, []byte(`{"DeviceId":`)) && key[len(key)-1] == '}'
}

// Load reads the table topic from its beginning to its end offsets and
// keeps a digest of every device's value. It logs nothing (LogLoad does).
func (t *Table) Load(ctx context.Context) (err error) {
	began := time.Now()
	defer func() {
		if err != nil {
			for i := range t.parts {
				t.parts[i].release()
			}
		}
	}()
	parts, err := t.cfg.Kafka.Partitions(ctx, t.cfg.Topic)
	if err != nil {
		return fmt.Errorf("table: %w", err)
	}
	t.n = len(parts)
	t.parts = make([]partState, t.n)
	t.loadParts = parts
	var st wire.Stats
	scan := t.cfg.Kafka.Scanner(t.cfg.Topic, loadFetchBytes, &st)
	var (
		mu          sync.Mutex
		foreign     int64
		firstKey    []byte
		firstWhere  string
		misplaced   int64
		misplacedAt []misplacedKey
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, min(runtime.GOMAXPROCS(0), maxLoadConcurrency)))
	for _, p := range parts {
		g.Go(func() error {
			// The partition holds at most End-First records: the log is
			// mapped at that size (committed as it is written) and never grows.
			// The log becomes the partition's rows in place (build).
			log, freeLog, trim := []logEntry(nil), func() {}, func(int) {}
			if span := p.End - p.First; span > 0 && span <= maxMappedLog {
				var err error
				if log, freeLog, err = offHeap[logEntry](int(span)); err != nil {
					return err
				}
				mapped := log
				log, trim = log[:0], func(keep int) { trimOffHeap(mapped, keep) }
			}
			built := false
			defer func() {
				if !built {
					freeLog()
				}
			}()
			var nForeign, nMisplaced int64
			wrong := map[string]bool{} // keys in the wrong partition, not deleted since
			err := scan.Scan(gctx, p.ID, p.First, p.End, func(m *wire.Message) error {
				d := digest{n: tombstone}
				if m.Value != nil {
					d = t.hash.sum(m.Value)
				}
				var did id
				var hex bool
				if t.natural {
					if hex = len(m.Key) > 0 && (naturalKey(m.Key) || hasHeader(m, HeaderChange)); hex {
						did = t.hash.keyID(m.Key)
					}
				} else {
					did, hex = hexID(m.Key)
				}
				switch {
				case len(m.Key) == 0 || (!hex && !hasHeader(m, HeaderChange)):
					nForeign++
					mu.Lock()
					if firstKey == nil {
						firstKey = append([]byte{}, m.Key...)
						firstWhere = fmt.Sprintf("%d@%d", p.ID, m.Offset)
					}
					mu.Unlock()
				case schema.Partition(m.Key, t.n) != p.ID:
					if m.Value != nil {
						wrong[string(m.Key)] = true
						nMisplaced++
					} else {
						delete(wrong, string(m.Key))
					}
				case hex:
					log = append(log, logEntry{entry{id: did, d: d}, uint64(len(log))})
				default:
					mu.Lock()
					if m.Value == nil {
						delete(t.odd, string(m.Key))
					} else {
						t.odd[string(m.Key)] = &oddEntry{d: d, inTable: true}
					}
					mu.Unlock()
				}
				return nil
			})
			if err != nil {
				return err
			}
			built = true
			if err := t.parts[p.ID].build(log, freeLog, trim); err != nil {
				return err
			}
			mu.Lock()
			foreign += nForeign
			misplaced += nMisplaced
			for k := range wrong {
				misplacedAt = append(misplacedAt, misplacedKey{key: k, partition: p.ID})
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("table: reading the table topic %q back: %w", t.cfg.Topic, err)
	}
	t.misplaced = misplacedAt
	// The read-back's fetch responses and batches are garbage now: give
	// their memory back before the snapshot is published, so that the
	// state and the pipeline's buffers do not add up with it in the peak.
	debug.FreeOSMemory()
	devices := int64(len(t.odd))
	for i := range t.parts {
		devices += int64(len(t.parts[i].entries))
	}
	t.stats.Devices, t.stats.Read, t.stats.Foreign, t.stats.Misplaced = devices, st.Messages.Load(), foreign, misplaced
	t.stats.LoadDuration = time.Since(began)
	t.wctx, t.wcancel = context.WithCancel(ctx)
	t.loaded = true
	t.bytesRead, t.firstForeign, t.firstForeignAt = st.Bytes.Load(), printable(firstKey), firstWhere
	return nil
}

// LogLoad logs what Load read: the devices, and the records left alone.
// Load itself logs nothing, so that a read-back whose run publishes
// nothing after all (an unchanged export) leaves no trace.
func (t *Table) LogLoad() {
	t.log.Info().Int("partitions", t.n).Int64("devices", t.stats.Devices).Int64("records_read", t.stats.Read).
		Int64("bytes_read", t.bytesRead).Dur("duration", t.stats.LoadDuration).Msg("table topic read")
	if t.stats.Foreign > 0 {
		t.log.Warn().Int64("records", t.stats.Foreign).Str("first_key", t.firstForeign).Str("first_at", t.firstForeignAt).
			Msg("table topic holds records whose key is not a DeviceId (written by someone else): left alone")
	}
	if t.stats.Misplaced > 0 {
		t.log.Warn().Int64("records", t.stats.Misplaced).
			Msg("table topic holds records in a partition their key does not hash to (its partition count changed): they get tombstones")
	}
}

// hasHeader reports whether m has a header named key; it is asked only
// for keys that are not DeviceIds (reading every record's headers costs a
// fifth of the read-back).
func hasHeader(m *wire.Message, key string) bool {
	_, ok := m.Header(key)
	return ok
}

// printable quotes at most 64 bytes of a foreign key for a log line.
func printable(k []byte) string {
	if len(k) > 64 {
		return strconv.Quote(string(k[:64])) + "…"
	}
	return strconv.Quote(string(k))
}

// position orders the lines of a snapshot: part, then line. Claims are
// position<<1 | staged.
func position(part int, line int64) uint64 {
	return uint64(part+1)<<40 | uint64(line)&(1<<40-1)
}

// Record compares one record of the snapshot with the table: key is its
// DeviceId, natural its natural key (read from value when nil). It is called
// concurrently for every record, once each; key and value are not kept.
// It fails only when a write of changes during the snapshot has failed.
func (t *Table) Record(part int, line int64, key, natural, value []byte) error {
	if !t.loaded {
		return errors.New("table: Record before Load")
	}
	if e := t.spillErr.Load(); e != nil {
		return *e
	}
	pos := position(part, line)
	d := t.hash.sum(value)
	var did id
	var ok bool
	if t.natural {
		if len(natural) == 0 { // not given: read from the line
			kr := t.keyReader.Get().(*schema.Keys)
			defer t.keyReader.Put(kr)
			var err error
			if _, natural, err = kr.Read(value); err != nil {
				return fmt.Errorf("table: the natural key of part %d line %d: %w", part, line, err)
			}
		}
		key, did, ok = natural, t.hash.keyID(natural), true
	} else {
		did, ok = hexID(key)
	}
	if ok {
		ps := &t.parts[schema.Partition(key, t.n)]
		if i, found := ps.find(&did); found {
			e := &ps.entries[i]
			same := e.d.equal(&d)
			claim := pos << 1
			if !same {
				claim |= 1
			}
			if first, ok := e.claimOnce(claim); !ok {
				t.duplicate(key, value, part, line, d, first, true, e.d)
				return nil
			}
			if same {
				t.unchanged.Add(1)
				return nil
			}
			t.changed.Add(1)
			return t.stage(key, value, part, line, Changed)
		}
		prev, err := t.newKeys.claim(&did, pos<<1|1)
		if err != nil {
			return err
		}
		if prev != 0 {
			t.duplicate(key, value, part, line, d, prev, false, digest{})
			return nil
		}
		t.added.Add(1)
		return t.stage(key, value, part, line, Added)
	}
	t.oddMu.Lock()
	oe := t.odd[string(key)]
	if oe == nil {
		oe = &oddEntry{}
		t.odd[string(key)] = oe
	}
	if oe.claim != 0 {
		prev, in, td := oe.claim, oe.inTable, oe.d
		t.oddMu.Unlock()
		t.duplicate(key, value, part, line, d, prev, in, td)
		return nil
	}
	same := oe.inTable && oe.d.equal(&d)
	oe.claim = pos << 1
	if !same {
		oe.claim |= 1
	}
	in := oe.inTable
	t.oddMu.Unlock()
	switch {
	case same:
		t.unchanged.Add(1)
		return nil
	case in:
		t.changed.Add(1)
		return t.stage(key, value, part, line, Changed)
	}
	t.added.Add(1)
	return t.stage(key, value, part, line, Added)
}

// duplicate remembers a later occurrence of a DeviceId in the snapshot;
// Complete makes the last one in export order the table's.
func (t *Table) duplicate(key, value []byte, part int, line int64, d digest, first uint64, inTable bool, td digest) {
	t.duplicates.Add(1)
	pos := position(part, line)
	t.dupMu.Lock()
	defer t.dupMu.Unlock()
	dp := t.dups[string(key)]
	if dp == nil {
		dp = &dup{first: first, inTable: inTable, table: td}
		t.dups[string(key)] = dp
	}
	if pos > dp.pos {
		dp.pos, dp.value, dp.d, dp.part, dp.line = pos, append(dp.value[:0], value...), d, part, line
	}
}

// Complete writes the staged changes, then a tombstone for every device of
// the table that the snapshot did not contain. It is called once, after
// every snapshot-end marker was acknowledged.
func (t *Table) Complete(ctx context.Context) error {
	if !t.loaded {
		return errors.New("table: Complete before Load")
	}
	began := time.Now()
	defer t.wcancel()

	// Duplicates: the last occurrence in export order wins. When it is a
	// later one, the first occurrence's staged record is dropped (or, if
	// already written, overwritten).
	t.bufMu.Lock()
	drop := map[string]bool{}
	var winners []*bufEntry
	dupKeys := 0
	for key, dp := range t.dups {
		dupKeys++
		if dp.first>>1 > dp.pos {
			continue // the first occurrence is the last one: handled as any line
		}
		staged := dp.first&1 == 1
		inBuffer := staged && t.buf.has(key)
		if inBuffer {
			drop[key] = true
		}
		writtenFirst := staged && !inBuffer
		if dp.inTable && dp.d.equal(&dp.table) && !writtenFirst {
			continue // the table already holds the winning line
		}
		change := Added
		if dp.inTable {
			change = Changed
		}
		winners = append(winners, &bufEntry{key: []byte(key), value: dp.value, part: dp.part, line: dp.line, change: change})
	}
	if dupKeys > 0 {
		if t.natural {
			t.log.Warn().Int("keys", dupKeys).Int64("lines", t.duplicates.Load()).
				Msg("natural keys occur more than once in the export: the table holds each one's last line (highest mde.part, then mde.line)")
		} else {
			t.log.Warn().Int("device_ids", dupKeys).Int64("lines", t.duplicates.Load()).
				Msg("DeviceIds occur more than once in the export: the table holds each one's last line (highest mde.part, then mde.line)")
		}
	}
	msgs := t.buf.messages(t, drop)
	for _, w := range winners {
		msgs = append(msgs, t.message(w.key, w.value, w.part, w.line, w.change))
	}
	t.buf, t.bufBytes = &buffer{}, 0
	t.bufMu.Unlock()
	if err := t.stopSpill(); err != nil {
		return err
	}

	// The devices of the table that the snapshot did not contain get
	// tombstones. They are listed now, and the device state (tens of
	// megabytes) is returned before the writes, which allocate batches.
	var goneKeys [][]byte
	if t.natural {
		var err error
		if goneKeys, err = t.unclaimedKeys(ctx); err != nil {
			return err
		}
	}
	gone, freeGone, err := t.unclaimed()
	if err != nil {
		return err
	}
	defer freeGone()
	if t.natural {
		gone = gone[:0] // their keys are in goneKeys
	}
	for i := range t.parts {
		t.parts[i].release()
	}
	t.newKeys.release()

	if err := t.write(ctx, msgs); err != nil {
		return err
	}

	// Tombstones, after every added and changed record was written.
	var tombs []wire.KeyedMessage
	removed := int64(0)
	flush := func(force bool) error {
		if len(tombs) == 0 || (!force && len(tombs) < writeChunk) {
			return nil
		}
		err := t.write(ctx, tombs)
		tombs = tombs[:0]
		return err
	}
	for _, d := range gone {
		tombs = append(tombs, t.tombstone(d.appendHex(nil), -1))
		removed++
		if err := flush(false); err != nil {
			return err
		}
	}
	for _, key := range goneKeys {
		tombs = append(tombs, t.tombstone(key, -1))
		removed++
		if err := flush(false); err != nil {
			return err
		}
	}
	for key, oe := range t.odd {
		if oe.inTable && oe.claim == 0 {
			tombs = append(tombs, t.tombstone([]byte(key), -1))
			removed++
		}
	}
	for _, mk := range t.misplaced {
		tombs = append(tombs, t.tombstone([]byte(mk.key), mk.partition))
	}
	if err := flush(true); err != nil {
		return err
	}
	t.stats.Added, t.stats.Changed, t.stats.Unchanged = t.added.Load(), t.changed.Load(), t.unchanged.Load()
	t.stats.Removed, t.stats.Duplicates = removed, t.duplicates.Load()
	t.stats.CompleteDuration = time.Since(began)
	t.log.Info().Int64("added", t.stats.Added).Int64("changed", t.stats.Changed).Int64("removed", removed).
		Int64("unchanged", t.stats.Unchanged).Int64("devices", t.stats.Added+t.stats.Changed+t.stats.Unchanged).
		Dur("duration", t.stats.CompleteDuration).Msg("table topic updated")
	return nil
}

// unclaimed lists the devices of the table that no line of the snapshot
// claimed, outside the Go heap.
func (t *Table) unclaimed() ([]id, func(), error) {
	n := 0
	for p := range t.parts {
		for i := range t.parts[p].entries {
			if !t.parts[p].entries[i].claimed() {
				n++
			}
		}
	}
	out, free, err := offHeap[id](n)
	if err != nil {
		return nil, nil, err
	}
	out = out[:0]
	for p := range t.parts {
		for i := range t.parts[p].entries {
			if e := &t.parts[p].entries[i]; !e.claimed() {
				out = append(out, e.id)
			}
		}
	}
	return out, free, nil
}

// unclaimedKeys returns the natural keys of the rows of the table that no
// line of the snapshot claimed. The state holds a hash of each key, not
// the key: the partitions holding such rows are read again over the
// range Load read, and the key of every record whose hash is an
// unclaimed row's is taken (once). A table by natural key thus costs the
// same 48 bytes a row as one by DeviceId, plus a second read of the
// partitions where rows were removed.
func (t *Table) unclaimedKeys(ctx context.Context) ([][]byte, error) {
	var (
		mu  sync.Mutex
		out [][]byte
		st  wire.Stats
	)
	scan := t.cfg.Kafka.Scanner(t.cfg.Topic, loadFetchBytes, &st)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, min(runtime.GOMAXPROCS(0), maxLoadConcurrency)))
	for _, p := range t.loadParts {
		ps := &t.parts[p.ID]
		var gone []id // sorted: entries are
		for i := range ps.entries {
			if !ps.entries[i].claimed() {
				gone = append(gone, ps.entries[i].id)
			}
		}
		if len(gone) == 0 {
			continue
		}
		g.Go(func() error {
			found := make([]bool, len(gone))
			left := len(gone)
			var keys [][]byte
			err := scan.Scan(gctx, p.ID, p.First, p.End, func(m *wire.Message) error {
				if left == 0 || m.Value == nil || len(m.Key) == 0 {
					return nil
				}
				d := t.hash.keyID(m.Key)
				i, ok := slices.BinarySearchFunc(gone, d, func(a, b id) int { return compareID(&a, &b) })
				if ok && !found[i] {
					found[i] = true
					left--
					keys = append(keys, bytes.Clone(m.Key))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if left > 0 {
				t.log.Warn().Int("partition", p.ID).Int("rows", left).
					Msg("table topic: the keys of removed rows were not found when read again (compacted away meanwhile?): they get no tombstone in this run")
			}
			mu.Lock()
			out = append(out, keys...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("table: reading the keys of removed rows from %q: %w", t.cfg.Topic, err)
	}
	return out, nil
}

// stopSpill waits for the changes written during the snapshot.
func (t *Table) stopSpill() error {
	t.bufMu.Lock()
	if t.spilled && !t.spillDone {
		t.spillDone = true
		close(t.spill)
	}
	t.bufMu.Unlock()
	t.spillWG.Wait()
	if e := t.spillErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Close ends the run's table update: after a failed snapshot it cancels
// the writes still in progress; it returns the state's memory. Call it
// once, after Complete or instead of it; Record must not be running.
func (t *Table) Close() {
	if t.wcancel != nil {
		t.wcancel()
	}
	_ = t.stopSpill()
	for i := range t.parts {
		t.parts[i].release()
	}
	t.newKeys.release()
	t.loaded = false
}

// Stats returns the figures of the run so far.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Added, s.Changed, s.Unchanged, s.Duplicates = t.added.Load(), t.changed.Load(), t.unchanged.Load(), t.duplicates.Load()
	return s
}

// Partitions returns the table topic's partition count (after Load).
func (t *Table) Partitions() int { return t.n }

// tombstone builds the null-value record that removes key. partition >= 0
// sends it to that partition instead of the key's murmur2 partition.
func (t *Table) tombstone(key []byte, partition int) wire.KeyedMessage {
	m := wire.KeyedMessage{Key: key, Headers: []wire.Header{
		{Key: schema.HeaderExport, Value: t.hExport},
		{Key: schema.HeaderGeneratedTime, Value: t.hGenerated},
		{Key: schema.HeaderRunID, Value: t.hRunID},
		{Key: HeaderChange, Value: []byte(Removed)},
	}}
	if partition >= 0 {
		m.Pinned, m.Partition = true, partition
	}
	return m
}

// message builds the table record of a device's line.
func (t *Table) message(key, value []byte, part int, line int64, change string) wire.KeyedMessage {
	return wire.KeyedMessage{Key: key, Value: value, Headers: []wire.Header{
		{Key: schema.HeaderExport, Value: t.hExport},
		{Key: schema.HeaderGeneratedTime, Value: t.hGenerated},
		{Key: schema.HeaderRunID, Value: t.hRunID},
		{Key: schema.HeaderPart, Value: strconv.AppendInt(nil, int64(part), 10)},
		{Key: schema.HeaderLine, Value: strconv.AppendInt(nil, line, 10)},
		{Key: schema.HeaderContentType, Value: t.hContentType},
		{Key: HeaderChange, Value: []byte(change)},
	}}
}

// write writes msgs in chunks. The order of two writes of one key is
// kept: a chunk is written completely before the next one. The writer
// retried each chunk already; its failure is final.
func (t *Table) write(ctx context.Context, msgs []wire.KeyedMessage) error {
	for len(msgs) > 0 {
		n := min(len(msgs), writeChunk)
		if err := t.cfg.Writer.Write(ctx, msgs[:n]); err != nil {
			return fmt.Errorf("table: writing %d records to %q: %w", n, t.cfg.Topic, err)
		}
		msgs = msgs[n:]
	}
	return nil
}
