package table

import (
	"errors"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
)

// bufEntry is one staged table record.
type bufEntry struct {
	key, value []byte
	part       int
	line       int64
	change     string
}

// buffer holds staged records; keys and values live in one arena.
type buffer struct {
	entries []bufEntry
	arena   []byte
	index   map[string]int // key → entry, built on demand by has
}

func (b *buffer) add(key, value []byte, part int, line int64, change string) {
	if cap(b.arena)-len(b.arena) < len(key)+len(value) {
		// A new arena: entries keep pointing into the old one.
		b.arena = make([]byte, 0, max(len(key)+len(value), 2*cap(b.arena), 64<<10))
	}
	off := len(b.arena)
	b.arena = append(b.arena, key...)
	b.arena = append(b.arena, value...)
	k := b.arena[off : off+len(key) : off+len(key)]
	v := b.arena[off+len(key) : len(b.arena) : len(b.arena)]
	b.entries = append(b.entries, bufEntry{key: k, value: v, part: part, line: line, change: change})
}

func (b *buffer) has(key string) bool {
	if b.index == nil {
		b.index = make(map[string]int, len(b.entries))
		for i, e := range b.entries {
			b.index[string(e.key)] = i
		}
	}
	_, ok := b.index[key]
	return ok
}

// messages turns the staged records into table records, leaving out the
// keys in drop.
func (b *buffer) messages(t *Table, drop map[string]bool) []wire.KeyedMessage {
	out := make([]wire.KeyedMessage, 0, len(b.entries))
	for _, e := range b.entries {
		if drop[string(e.key)] {
			continue
		}
		out = append(out, t.message(e.key, e.value, e.part, e.line, e.change))
	}
	return out
}

// stage adds a changed or added device to the buffer. Once the buffer
// holds more than BufferBytes, it is written out and every later change
// is written while the snapshot is published, in batches of spillBytes.
func (t *Table) stage(key, value []byte, part int, line int64, change string) error {
	t.bufMu.Lock()
	defer t.bufMu.Unlock()
	t.buf.add(key, value, part, line, change)
	t.bufBytes += len(key) + len(value)
	limit := t.cfg.BufferBytes
	if t.spilled {
		limit = spillBytes
	}
	if t.bufBytes < limit {
		return nil
	}
	if t.spillDone {
		return errors.New("table: Record after Complete or Close")
	}
	if !t.spilled {
		t.spilled = true
		t.spill = make(chan *buffer, 1)
		t.spillWG.Add(1)
		go t.spillWriter()
		t.log.Info().Int("buffer_bytes", t.cfg.BufferBytes).
			Msg("table: more changes than the buffer holds; writing them while the snapshot is published")
	}
	full := t.buf
	t.buf, t.bufBytes = &buffer{}, 0
	if e := t.spillErr.Load(); e != nil {
		return *e
	}
	t.spill <- full // backpressure: at most one batch waits
	return nil
}

// spillWriter writes the batches of changes written during the snapshot.
// After a failure it drops what follows; Record and Complete report it.
func (t *Table) spillWriter() {
	defer t.spillWG.Done()
	for b := range t.spill {
		// In chunks, each chunk's entries dropped once written: the
		// messages of a whole buffer (32 MB at first) never exist at once,
		// and its arenas are garbage as soon as their records are written.
		for len(b.entries) > 0 && t.spillErr.Load() == nil {
			n := min(len(b.entries), writeChunk)
			msgs := make([]wire.KeyedMessage, n)
			for i, e := range b.entries[:n] {
				msgs[i] = t.message(e.key, e.value, e.part, e.line, e.change)
			}
			if err := t.write(t.wctx, msgs); err != nil {
				t.spillErr.Store(&err)
			}
			clear(b.entries[:n])
			b.entries = b.entries[n:]
		}
	}
}
