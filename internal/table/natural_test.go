package table

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"sort"
	"testing"
	"unsafe"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

const vulnerabilities = "SoftwareVulnerabilitiesExport"

// vulnRow is row (device d, software s, CVE c; c < 0: CveId null) of a
// vulnerabilities export at version v: its natural key, as the table
// must key it, and its line (CveId spelled cveId when odd, as Defender's
// casing varies).
func vulnRow(d, s, c, v int, oddCase bool) line {
	h := sha1.Sum([]byte(fmt.Sprint("device-", d)))
	id := hex.EncodeToString(h[:])
	cve := "null"
	if c >= 0 {
		cve = fmt.Sprintf(`"CVE-2024-%04d"`, c)
	}
	name := "CveId"
	if oddCase {
		name = "cveId"
	}
	key := fmt.Sprintf(`{"DeviceId":"%s","SoftwareVendor":"vendor%d","SoftwareName":"app%d","SoftwareVersion":"1.%d","CveId":%s}`, id, s, s, s, cve)
	value := fmt.Sprintf(`{"DeviceId":"%s","SoftwareVendor":"vendor%d","SoftwareName":"app%d","SoftwareVersion":"1.%d",%q:%s,"CvssScore":7.5,"Seen":%d}`, id, s, s, s, name, cve, v)
	return line{key: key, value: value}
}

type rowID struct{ d, s, c int }

// vulnSnapshot lists rows (→ version) as the lines of 3 parts.
func vulnSnapshot(rows map[rowID]int) []line {
	ids := make([]rowID, 0, len(rows))
	for r := range rows {
		ids = append(ids, r)
	}
	sort.Slice(ids, func(a, b int) bool {
		x, y := ids[a], ids[b]
		if x.d != y.d {
			return x.d < y.d
		}
		if x.s != y.s {
			return x.s < y.s
		}
		return x.c < y.c
	})
	var out []line
	nums := [3]int64{}
	for _, r := range ids {
		l := vulnRow(r.d, r.s, r.c, rows[r], r.c%7 == 3)
		l.part = r.d % 3
		nums[l.part]++
		l.num = nums[l.part]
		out = append(out, l)
	}
	return out
}

func byChange(recs []record) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		out[r.headers[HeaderChange]]++
	}
	return out
}

func natural(c *Config) { c.Export = vulnerabilities }

// TestNaturalKeyTableThreeSnapshots: a table by natural key (an export
// with many records per device) adds, changes and removes rows by the
// compact JSON of their key columns, partitioned by murmur2 of that key,
// and an unchanged row is not written again.
func TestNaturalKeyTableThreeSnapshots(t *testing.T) {
	e := newEnv(t, 4)
	rows := map[rowID]int{}
	for d := range 60 {
		for s := range 2 {
			rows[rowID{d, s, s*10 + d%3}] = 1
			rows[rowID{d, s, -1 - s}] = 1 // software without a known CVE: CveId null
		}
	}
	l1 := vulnSnapshot(rows)
	tb, _, err := e.run("run-1", l1, true, natural)
	if err != nil {
		t.Fatal(err)
	}
	if st := tb.Stats(); st.Added != 240 || st.Devices != 0 {
		t.Fatalf("stats %+v", st)
	}
	if got := byChange(e.check("run-1", l1)); got[Added] != 240 || len(got) != 1 {
		t.Fatalf("first run wrote %v", got)
	}

	// Snapshot 2: 20 rows changed, a new CVE on 30 devices.
	n := 0
	for r := range rows {
		if r.c >= 0 && n < 20 {
			rows[r], n = 2, n+1
		}
	}
	for d := range 30 {
		rows[rowID{d, 0, 99}] = 1
	}
	l2 := vulnSnapshot(rows)
	tb, _, err = e.run("run-2", l2, true, natural)
	if err != nil {
		t.Fatal(err)
	}
	if got := byChange(e.check("run-2", l2)); got[Added] != 30 || got[Changed] != 20 || len(got) != 2 {
		t.Fatalf("second run wrote %v", got)
	}
	if st := tb.Stats(); st.Devices != 240 || st.Unchanged != 220 {
		t.Fatalf("stats %+v", st)
	}

	// Snapshot 3: the CVE 99 rows fixed (removed), one device gone.
	for d := range 30 {
		delete(rows, rowID{d, 0, 99})
	}
	gone := 0
	for r := range rows {
		if r.d == 7 {
			delete(rows, r)
			gone++
		}
	}
	l3 := vulnSnapshot(rows)
	tb, _, err = e.run("run-3", l3, true, natural)
	if err != nil {
		t.Fatal(err)
	}
	mine := e.check("run-3", l3)
	if got := byChange(mine); got[Removed] != 30+gone || len(got) != 1 {
		t.Fatalf("third run wrote %v", got)
	}
	for _, r := range mine {
		if r.value != nil || !naturalKey([]byte(r.key)) || r.partition != schema.Partition([]byte(r.key), e.n) {
			t.Fatalf("tombstone %+v", r)
		}
	}
	if st := tb.Stats(); st.Devices != 270 || st.Removed != int64(30+gone) {
		t.Fatalf("stats %+v", st)
	}
	if tb, _, err = e.run("run-4", l3, true, natural); err != nil || len(e.check("run-4", l3)) != 0 || tb.Stats().Unchanged != int64(len(l3)) {
		t.Fatalf("an unchanged snapshot wrote records (%v)", err)
	}
}

// TestNaturalKeyDuplicatesKeepTheLast: a natural key repeated in one
// snapshot (here spelled with another casing of a key column) is counted
// and the table holds its last line in export order.
func TestNaturalKeyDuplicatesKeepTheLast(t *testing.T) {
	e := newEnv(t, 3)
	first := vulnRow(1, 1, 5, 1, false)
	last := vulnRow(1, 1, 5, 2, true) // same key, CveId spelled cveId
	if first.key != last.key {
		t.Fatal("test rows differ in key")
	}
	other := vulnRow(2, 1, 5, 1, false)
	first.part, first.num = 0, 1
	other.part, other.num = 0, 2
	last.part, last.num = 2, 1
	tb, _, err := e.run("run-1", []line{first, other, last}, true, natural)
	if err != nil {
		t.Fatal(err)
	}
	e.check("run-1", []line{first, other, last}) // the map keeps last for the key
	if st := tb.Stats(); st.Duplicates != 1 {
		t.Fatalf("stats %+v, want 1 duplicate", st)
	}
}

// TestRowStateIs48Bytes: whatever the key, a row of the state read back
// costs 48 bytes (its hashed id, its value's digest, the claim), and a
// record of the read-back log as much.
func TestRowStateIs48Bytes(t *testing.T) {
	if n := unsafe.Sizeof(row{}); n != 48 {
		t.Fatalf("row is %d bytes", n)
	}
	if n := unsafe.Sizeof(logEntry{}); n > 48 {
		t.Fatalf("logEntry is %d bytes", n)
	}
	h := newHasher()
	a, b := h.keyID([]byte(`{"DeviceId":"a","CveId":null}`)), h.keyID([]byte(`{"DeviceId":"a","CveId":"x"}`))
	if a == b || h.keyID([]byte(`{"DeviceId":"a","CveId":null}`)) != a {
		t.Fatal("keyID is not a function of the key")
	}
}

func TestEqualIDAndDigest(t *testing.T) {
	h := newHasher()
	for i := range 200 {
		a, b := h.keyID(fmt.Append(nil, i)), h.keyID(fmt.Append(nil, i))
		if !equalID(&a, &b) {
			t.Fatal("equal ids differ")
		}
		for j := range 20 {
			c := a
			c[j] ^= 1 << (i % 8)
			if equalID(&a, &c) {
				t.Fatalf("ids differing in byte %d are equal", j)
			}
		}
		d, e := h.sum(fmt.Append(nil, i)), h.sum(fmt.Append(nil, i+1))
		if !d.equal(&d) || d.equal(&e) || d.equal(&digest{n: d.n, a: d.a}) {
			t.Fatal("digest equality")
		}
	}
}
