package table

import (
	"crypto/rand"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/zeebo/xxh3"
)

// id identifies a row: a DeviceId of 40 lowercase hexadecimal
// characters, decoded, or (a table by natural key) a 160-bit keyed hash
// of the key (keyID).
type id [20]byte

// hexID decodes key when it is 40 lowercase hexadecimal characters.
func hexID(key []byte) (out id, ok bool) {
	if len(key) != 40 {
		return out, false
	}
	bad := byte(0)
	for i := range out {
		hi, lo := unhexTable[key[2*i]], unhexTable[key[2*i+1]]
		bad |= hi | lo
		out[i] = hi<<4 | lo&15
	}
	return out, bad&0x80 == 0
}

// unhexTable maps '0'-'9' and 'a'-'f' to their values, everything else to
// 0x80.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x80
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
	}
	return t
}()

// compareID orders ids as bytes.Compare does, comparing 8 bytes at a time.
func compareID(x, y *id) int {
	for _, off := range [...]int{0, 8} {
		a, b := binary.BigEndian.Uint64(x[off:]), binary.BigEndian.Uint64(y[off:])
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	a, b := binary.BigEndian.Uint32(x[16:]), binary.BigEndian.Uint32(y[16:])
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// equalID reports x == y with three loads a side: the compiler's [20]byte
// comparison calls memequal, which cost a tenth of a table run's CPU.
func equalID(x, y *id) bool {
	return binary.LittleEndian.Uint64(x[:8]) == binary.LittleEndian.Uint64(y[:8]) &&
		binary.LittleEndian.Uint64(x[8:16]) == binary.LittleEndian.Uint64(y[8:16]) &&
		binary.LittleEndian.Uint32(x[16:]) == binary.LittleEndian.Uint32(y[16:])
}

// equal reports d == o, as equalID does.
func (d *digest) equal(o *digest) bool {
	return d.n == o.n && binary.LittleEndian.Uint64(d.a[:]) == binary.LittleEndian.Uint64(o.a[:]) &&
		binary.LittleEndian.Uint64(d.b[:]) == binary.LittleEndian.Uint64(o.b[:])
}

const hexDigits = "0123456789abcdef"

// appendHex appends the 40 hex characters of d.
func (d id) appendHex(dst []byte) []byte {
	for _, b := range d {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst
}

// digest identifies a value: its length and two 64-bit hashes seeded at
// random for each run: hash/maphash (a keyed hash, AES-based where the CPU
// has it) and XXH3 (github.com/zeebo/xxh3, four times as fast).
// Its hashes are byte arrays so that it is 20 bytes aligned to 4, and an
// entry (id and digest) packs into 40 bytes.
type digest struct {
	n    uint32
	a, b [8]byte
}

// tombstone marks a deleted key in the log of one partition.
const tombstone = ^uint32(0)

type hasher struct {
	a maphash.Seed
	b uint64
}

func newHasher() hasher {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hasher{maphash.MakeSeed(), binary.LittleEndian.Uint64(b[:])}
}

// keyID is the id of a natural key: maphash (keyed by the run's secret
// seed) and 96 bits of XXH3-128 (seeded), 160 bits. The first bytes are
// maphash's, uniform, as the bucket index wants.
func (h hasher) keyID(key []byte) (out id) {
	binary.BigEndian.PutUint64(out[:8], maphash.Bytes(h.a, key))
	x := xxh3.Hash128Seed(key, h.b^0x6b6579) // "key": apart from the value's seed
	binary.BigEndian.PutUint64(out[8:16], x.Hi)
	binary.BigEndian.PutUint32(out[16:], uint32(x.Lo))
	return out
}

func (h hasher) sum(v []byte) digest {
	d := digest{n: uint32(len(v))}
	binary.LittleEndian.PutUint64(d.a[:], maphash.Bytes(h.a, v))
	binary.LittleEndian.PutUint64(d.b[:], xxh3.HashSeed(v, h.b))
	return d
}

// entry is a device's id and digest: 40 bytes.
type entry struct {
	id id
	d  digest
}

// row is a device of the table: its entry and the claim of the snapshot
// line found for it (0: none yet; read and written atomically), together
// in 48 bytes so that a lookup touches one place.
type row struct {
	entry
	claim uint64
}

// claimOnce sets the claim if none was set; it returns the claim before.
func (d *row) claimOnce(c uint64) (uint64, bool) {
	if atomic.CompareAndSwapUint64(&d.claim, 0, c) {
		return 0, true
	}
	return atomic.LoadUint64(&d.claim), false
}

func (d *row) claimed() bool { return atomic.LoadUint64(&d.claim) != 0 }

// partState is the state of one table partition: its devices sorted by
// id and a bucket index on the first bits of the id (DeviceIds are SHA-1
// shaped, hence uniform: one or two devices per bucket).
type partState struct {
	entries []row
	bucket  []int32 // entries with bucket k are entries[bucket[k]:bucket[k+1]]
	shift   uint
	free    []func() // unmaps entries and bucket
}

// release returns the state's memory.
func (ps *partState) release() {
	for _, f := range ps.free {
		f()
	}
	*ps = partState{}
}

// logEntry is a record as read back: its entry and, in claim, its place
// in the partition (a sequence number) until build turns the log into the
// partition's rows in place.
type logEntry = row

func compareLog(x, y logEntry) int {
	if c := compareID(&x.id, &y.id); c != 0 {
		return c
	}
	return int(int64(x.claim) - int64(y.claim))
}

// sortLog orders log by (id, seq) in place. DeviceIds are SHA-1 shaped
// and natural keys hashed, so the ids' first bits are uniform: the
// records are permuted in place into buckets of one or two by those bits
// (an American flag sort: a count, then cycles of swaps), and each bucket
// is then put in (id, seq) order. That is linear and needs no second copy
// of the log, where a comparison sort of a million records took a tenth
// of the read-back and an out-of-place bucket sort doubled its memory.
func sortLog(log []logEntry) {
	n := len(log)
	if n < 64 {
		slices.SortFunc(log, compareLog)
		return
	}
	b := bits.Len(uint(n / 2))
	shift := uint(32 - b)
	bucketOf := func(e *logEntry) int { return int(binary.BigEndian.Uint32(e.id[:4]) >> shift) }
	nb := 1 << b
	// The bucket bounds are megabytes for a large partition: outside the
	// Go heap, returned at once.
	bounds, free, err := offHeap[int32](2*nb + 1)
	if err != nil { // no memory for the bounds: sort by comparison
		slices.SortFunc(log, compareLog)
		return
	}
	defer free()
	start, next := bounds[:nb+1], bounds[nb+1:]
	for i := range log {
		start[bucketOf(&log[i])+1]++
	}
	for k := 1; k < len(start); k++ {
		start[k] += start[k-1]
	}
	copy(next, start[:nb])
	for k := 0; k < nb; k++ {
		end := start[k+1]
		for next[k] < end {
			v := log[next[k]]
			kb := bucketOf(&v)
			for kb != k { // carry v to its bucket, taking what was there
				j := next[kb]
				next[kb]++
				v, log[j] = log[j], v
				kb = bucketOf(&v)
			}
			log[next[k]] = v
			next[k]++
		}
	}
	for k := 0; k < nb; k++ {
		bucket := log[start[k]:start[k+1]]
		switch {
		case len(bucket) > 16: // ids that are not uniform
			slices.SortFunc(bucket, compareLog)
		case len(bucket) > 1:
			for i := 1; i < len(bucket); i++ {
				for j := i; j > 0 && compareLog(bucket[j-1], bucket[j]) > 0; j-- {
					bucket[j-1], bucket[j] = bucket[j], bucket[j-1]
				}
			}
		}
	}
}

// build sorts log (the partition's records in offset order, tombstones
// included; claim holds each one's sequence number), keeps the newest
// record of every id, drops deleted ids, and makes the result the
// partition's rows — in place, in the log's own memory, which free
// returns (trim, when set, returns the unused tail of it at once).
func (ps *partState) build(log []logEntry, free func(), trim func(keep int)) error {
	ps.free = append(ps.free, free)
	sortLog(log)
	n := 0
	for i := range log {
		if (i+1 < len(log) && equalID(&log[i+1].id, &log[i].id)) || log[i].d.n == tombstone {
			continue // a newer record of the same id follows, or the id is deleted
		}
		log[n] = row{entry: log[i].entry}
		n++
	}
	ps.entries = log[:n:n]
	if trim != nil {
		trim(n)
	}
	// Two to four rows per bucket: the index is a twelfth of the rows'
	// memory (1 byte a row), and a bucket's rows are adjacent (one or two
	// cache lines to scan after the index's).
	b := max(0, bits.Len(uint(n/4)))
	ps.shift = uint(32 - b)
	var err error
	var freeBucket func()
	if ps.bucket, freeBucket, err = offHeap[int32](1<<b + 1); err != nil {
		return err
	}
	ps.free = append(ps.free, freeBucket)
	k := 0
	for i := range ps.entries {
		for bk := ps.bucketOf(&ps.entries[i].id); k <= bk; k++ {
			ps.bucket[k] = int32(i)
		}
	}
	for ; k < len(ps.bucket); k++ {
		ps.bucket[k] = int32(n)
	}
	return nil
}

func (ps *partState) bucketOf(d *id) int {
	if ps.shift >= 32 {
		return 0
	}
	return int(binary.BigEndian.Uint32(d[:4]) >> ps.shift)
}

// find returns the index of d in entries.
func (ps *partState) find(d *id) (int, bool) {
	if len(ps.entries) == 0 {
		return 0, false
	}
	k := ps.bucketOf(d)
	lo, hi := int(ps.bucket[k]), int(ps.bucket[k+1])
	if hi-lo <= 12 {
		// A few rows, adjacent in memory: scan them.
		for i := lo; i < hi; i++ {
			if equalID(&ps.entries[i].id, d) {
				return i, true
			}
		}
		return 0, false
	}
	// Ids that are not uniform (not Defender's) crowd a bucket.
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := compareID(&ps.entries[m].id, d); {
		case c == 0:
			return m, true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// newKeys holds the claims of devices that are not in the table yet: on
// a first run, every device. It is a hash table with linear probing in
// memory outside the Go heap (offHeap), sharded to keep concurrent Record
// calls apart; a shard doubles when it is three quarters full. Slots are
// placed by a keyed hash of the id, so ids chosen to collide cannot slow
// it down.
type newKeys struct {
	seed   maphash.Seed
	shards [64]keyShard
}

type keyShard struct {
	mu    sync.Mutex
	slots []keySlot
	n     int
	free  func()
}

// keySlot is 32 bytes.
type keySlot struct {
	id    id
	used  uint32
	claim uint64
}

func newNewKeys() *newKeys { return &newKeys{seed: maphash.MakeSeed()} }

// claim records claim for d; it returns the previous claim (0: none).
func (nk *newKeys) claim(d *id, claim uint64) (uint64, error) {
	h := maphash.Bytes(nk.seed, d[:])
	s := &nk.shards[h>>58]
	s.mu.Lock()
	defer s.mu.Unlock()
	if (s.n+1)*4 > len(s.slots)*3 {
		if err := s.grow(nk.seed); err != nil {
			return 0, err
		}
	}
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.used == 0 {
			*sl = keySlot{id: *d, used: 1, claim: claim}
			s.n++
			return 0, nil
		}
		if equalID(&sl.id, d) {
			return sl.claim, nil
		}
	}
}

func (s *keyShard) grow(seed maphash.Seed) error {
	size := max(1024, 2*len(s.slots))
	slots, free, err := offHeap[keySlot](size)
	if err != nil {
		return err
	}
	mask := uint64(size - 1)
	for _, sl := range s.slots {
		if sl.used == 0 {
			continue
		}
		i := maphash.Bytes(seed, sl.id[:]) & mask
		for slots[i].used != 0 {
			i = (i + 1) & mask
		}
		slots[i] = sl
	}
	if s.free != nil {
		s.free()
	}
	s.slots, s.free = slots, free
	return nil
}

// release returns the memory of every shard.
func (nk *newKeys) release() {
	for i := range nk.shards {
		s := &nk.shards[i]
		s.mu.Lock()
		if s.free != nil {
			s.free()
		}
		s.slots, s.n, s.free = nil, 0, nil
		s.mu.Unlock()
	}
}

// oddEntry is a device whose key is not 40 lowercase hex characters (rare:
// Defender's DeviceIds always are).
type oddEntry struct {
	d       digest
	inTable bool
	claim   uint64
}
