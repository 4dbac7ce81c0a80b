package table

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/internal/wire/wiretest"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// env is an in-process broker with a compacted table topic.
type env struct {
	t      *testing.T
	addrs  []string
	k      *wire.Kafka
	writer *wire.KeyedWriter
	topic  string
	n      int
}

func newEnv(t *testing.T, partitions int) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := &env{t: t, addrs: c.ListenAddrs(), topic: "devices", n: partitions}
	cfg := wiretest.Config(e.addrs)
	cfg.RetryMaxElapsed = 2 * time.Second
	if e.k, err = wire.NewKafka(cfg, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.k.Close() })
	n, created, err := e.k.EnsureCompacted(context.Background(), e.topic, partitions, -1)
	if err != nil || !created || n != partitions {
		t.Fatalf("EnsureCompacted: %d partitions, created %v, %v", n, created, err)
	}
	e.writer = e.k.NewKeyedWriter(e.topic, n)
	t.Cleanup(func() { _ = e.writer.Close() })
	return e
}

// device returns DeviceId i and its line at version v.
func device(i, v int) (string, string) {
	h := sha1.Sum([]byte(fmt.Sprint("device-", i)))
	id := hex.EncodeToString(h[:])
	return id, fmt.Sprintf(`{"DeviceId":"%s","DeviceName":"host-%d","Seen":%d}`, id, i, v)
}

// line is one line of a snapshot, with its position.
type line struct {
	part       int
	num        int64
	key, value string
}

// snapshotOf lists devices (index → version) as the lines of 3 parts.
func snapshotOf(devices map[int]int) []line {
	var out []line
	nums := [3]int64{}
	for i := 0; i < 100000; i++ {
		v, ok := devices[i]
		if !ok {
			continue
		}
		id, value := device(i, v)
		p := i % 3
		nums[p]++
		out = append(out, line{p, nums[p], id, value})
	}
	return out
}

// run is one snapshot run against the table: Load, Record from one
// goroutine per part, Complete (unless complete is false: the run dies).
func (e *env) run(runID string, lines []line, complete bool, mod func(*Config)) (*Table, *testutil.SyncBuffer, error) {
	e.t.Helper()
	var logs testutil.SyncBuffer
	cfg := Config{Topic: e.topic, Export: schema.ExportInfoGathering, GeneratedTime: "2026-11-27T10:01:00Z", RunID: runID,
		Kafka: e.k, Writer: e.writer, Logger: zerolog.New(&logs)}
	if mod != nil {
		mod(&cfg)
	}
	tb, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	if err := tb.Load(ctx); err != nil {
		return tb, &logs, err
	}
	tb.LogLoad()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for p := range 3 {
		wg.Go(func() {
			for _, l := range lines {
				if l.part == p {
					if err := tb.Record(l.part, l.num, []byte(l.key), nil, []byte(l.value)); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return tb, &logs, err
	}
	if !complete {
		tb.Close()
		return tb, &logs, nil
	}
	err = tb.Complete(ctx)
	tb.Close()
	return tb, &logs, err
}

// record is one message of the table topic.
type record struct {
	partition int
	key       string
	value     *string
	headers   map[string]string
}

// read reads the whole table topic with an independent client (franz-go).
func (e *env) read() []record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.ConsumeTopics(e.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, e.topic)
	if err != nil {
		e.t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var out []record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read %d of %d table records", len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			rec := record{partition: int(r.Partition), key: string(r.Key), headers: map[string]string{}}
			if r.Value != nil {
				v := string(r.Value)
				rec.value = &v
			}
			for _, h := range r.Headers {
				rec.headers[h.Key] = string(h.Value)
			}
			out = append(out, rec)
		})
	}
	return out
}

// state is the table a compacted topic's reader ends up with.
func state(recs []record) map[string]string {
	out := map[string]string{}
	for _, r := range recs {
		if r.value == nil {
			delete(out, r.key)
		} else {
			out[r.key] = *r.value
		}
	}
	return out
}

// check asserts that the table topic holds exactly lines, and returns the
// records the run wrote.
func (e *env) check(runID string, lines []line) []record {
	e.t.Helper()
	recs := e.read()
	want := map[string]string{}
	for _, l := range lines {
		want[l.key] = l.value
	}
	got := state(recs)
	if len(got) != len(want) {
		e.t.Fatalf("table holds %d devices, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			e.t.Fatalf("device %s: table holds %q, want %q", k, got[k], v)
		}
	}
	var mine []record
	for _, r := range recs {
		if r.partition != schema.Partition([]byte(r.key), e.n) && r.value != nil {
			e.t.Fatalf("device %s in partition %d, murmur2 says %d", r.key, r.partition, schema.Partition([]byte(r.key), e.n))
		}
		if r.headers[schema.HeaderRunID] == runID {
			mine = append(mine, r)
		}
	}
	return mine
}

// changes counts the run's records by mde.change and checks their headers.
func changes(t *testing.T, recs []record, lines []line) map[string]int {
	t.Helper()
	pos := map[string]line{}
	for _, l := range lines {
		pos[l.key] = l
	}
	out := map[string]int{}
	for _, r := range recs {
		ch := r.headers[HeaderChange]
		out[ch]++
		if r.headers[schema.HeaderExport] != schema.ExportInfoGathering || r.headers[schema.HeaderGeneratedTime] != "2026-11-27T10:01:00Z" {
			t.Fatalf("record %s headers %v", r.key, r.headers)
		}
		switch ch {
		case Added, Changed:
			l := pos[r.key]
			if r.value == nil || r.headers[schema.HeaderPart] != strconv.Itoa(l.part) || r.headers[schema.HeaderLine] != strconv.FormatInt(l.num, 10) ||
				r.headers[schema.HeaderContentType] != schema.ContentTypeJSON || len(r.headers) != 7 {
				t.Fatalf("record %s: headers %v", r.key, r.headers)
			}
		case Removed:
			if r.value != nil || len(r.headers) != 4 {
				t.Fatalf("tombstone %s: value %v headers %v", r.key, r.value, r.headers)
			}
		default:
			t.Fatalf("record %s: mde.change %q", r.key, ch)
		}
	}
	return out
}

func TestThreeSnapshotsAddChangeRemove(t *testing.T) {
	e := newEnv(t, 3)
	s1 := map[int]int{}
	for i := range 300 {
		s1[i] = 1
	}
	l1 := snapshotOf(s1)
	tb, _, err := e.run("run-1", l1, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(t, e.check("run-1", l1), l1); got[Added] != 300 || len(got) != 1 {
		t.Fatalf("first run wrote %v", got)
	}
	if st := tb.Stats(); st.Devices != 0 || st.Added != 300 {
		t.Fatalf("stats %+v", st)
	}

	// Snapshot 2: 20 devices changed, 30 added.
	s2 := map[int]int{}
	for i := range 330 {
		s2[i] = 1
		if i%15 == 0 {
			s2[i] = 2
		}
	}
	l2 := snapshotOf(s2)
	tb, _, err = e.run("run-2", l2, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(t, e.check("run-2", l2), l2); got[Added] != 30 || got[Changed] != 20 || len(got) != 2 {
		t.Fatalf("second run wrote %v", got)
	}
	if st := tb.Stats(); st.Devices != 300 || st.Unchanged != 280 || st.Removed != 0 {
		t.Fatalf("stats %+v", st)
	}

	// Snapshot 3: 100 devices removed, one changed.
	s3 := map[int]int{}
	for i := 100; i < 330; i++ {
		s3[i] = s2[i]
	}
	s3[200] = 3
	l3 := snapshotOf(s3)
	tb, _, err = e.run("run-3", l3, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(t, e.check("run-3", l3), l3); got[Removed] != 100 || got[Changed] != 1 || len(got) != 2 {
		t.Fatalf("third run wrote %v", got)
	}
	if st := tb.Stats(); st.Devices != 330 || st.Removed != 100 || st.Unchanged != 229 {
		t.Fatalf("stats %+v", st)
	}

	// The same export again: nothing to write.
	tb, _, err = e.run("run-4", l3, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mine := e.check("run-4", l3); len(mine) != 0 || tb.Stats().Unchanged != int64(len(l3)) {
		t.Fatalf("an unchanged snapshot wrote %d records", len(mine))
	}
}

func TestFailedRunsWriteNoTombstoneAndTheNextCompleteRunRepairs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		buffer int
	}{{"buffered", 0}, {"spilling", 4 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4)
			mod := func(c *Config) { c.BufferBytes = tc.buffer }
			s1 := map[int]int{}
			for i := range 200 {
				s1[i] = 1
			}
			l1 := snapshotOf(s1)
			if _, _, err := e.run("run-1", l1, true, mod); err != nil {
				t.Fatal(err)
			}
			// A run that dies after its records (killed before the end
			// markers, or between them and the table): half the devices
			// gone, others changed.
			s2 := map[int]int{}
			for i := 100; i < 260; i++ {
				s2[i] = 2
			}
			l2 := snapshotOf(s2)
			_, logs, err := e.run("run-2", l2, false, mod)
			if err != nil {
				t.Fatal(err)
			}
			if spilled := strings.Contains(logs.String(), "more changes than the buffer holds"); spilled != (tc.buffer > 0) {
				t.Fatalf("spilled %v with a buffer of %d bytes", spilled, tc.buffer)
			}
			recs := e.read()
			written := 0
			for _, r := range recs {
				if r.headers[schema.HeaderRunID] == "run-2" {
					written++
					if r.value == nil {
						t.Fatalf("a failed run wrote a tombstone for %s", r.key)
					}
				}
			}
			if tc.buffer == 0 && written != 0 {
				t.Fatalf("a failed run wrote %d records although its changes fit the buffer", written)
			}
			// The next complete run brings the table to its snapshot.
			if _, _, err := e.run("run-3", l2, true, mod); err != nil {
				t.Fatal(err)
			}
			mine := changes(t, e.check("run-3", l2), l2)
			if mine[Removed] != 100 {
				t.Fatalf("repair run wrote %v", mine)
			}
		})
	}
}

func TestDuplicateDeviceIdsYieldOneRecordTheLastInExportOrder(t *testing.T) {
	e := newEnv(t, 2)
	idA, a1 := device(1, 1)
	_, a2 := device(1, 2)
	_, a3 := device(1, 3)
	idB, b1 := device(2, 1)
	_, b2 := device(2, 2)
	idC, c1 := device(3, 1)
	// Run 1: A three times (last: a3), B twice with the later line first
	// in time (part 2 before part 0 is irrelevant: export order counts).
	l1 := []line{{0, 1, idA, a1}, {1, 1, idB, b2}, {0, 2, idA, a2}, {2, 1, idA, a3}, {0, 3, idB, b1}, {0, 4, idC, c1}}
	if _, _, err := e.run("run-1", l1, true, nil); err != nil {
		t.Fatal(err)
	}
	recs := e.read()
	got := state(recs)
	if got[idA] != a3 || got[idB] != b2 || got[idC] != c1 || len(recs) != 3 {
		t.Fatalf("table %v from %d records; want a3, b2 (part 1 after part 0), c1 — one record each", got, len(recs))
	}
	// Run 2: A twice, the last occurrence equal to the table: nothing is
	// written for it.
	l2 := []line{{0, 1, idA, a1}, {1, 5, idA, a3}, {1, 6, idB, b2}, {1, 7, idC, c1}}
	tb, logs, err := e.run("run-2", l2, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.read()); n != 3 {
		t.Fatalf("the table topic holds %d records, want 3: nothing written", n)
	}
	if tb.Stats().Duplicates != 1 || !strings.Contains(logs.String(), "more than once") {
		t.Fatalf("duplicates %d, logs %s", tb.Stats().Duplicates, logs.String())
	}
}

func TestForeignRecordsAreLeftAloneAndOddKeysOfOursAreKept(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	// Someone else's records, with no mde.change header: a text key, a
	// null key, an uppercase-hex key.
	upper := strings.ToUpper(strings.Repeat("ab", 20))
	if err := e.writer.Write(ctx, []wire.KeyedMessage{
		{Key: []byte("config:retention"), Value: []byte("7d")},
		{Key: []byte(upper), Value: []byte("x")},
	}); err != nil {
		t.Fatal(err)
	}
	id1, v1 := device(1, 1)
	odd := "host-without-hex-id"
	l := []line{{0, 1, id1, v1}, {0, 2, odd, `{"DeviceId":"host-without-hex-id"}`}}
	tb, logs, err := e.run("run-1", l, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tb.Stats().Foreign != 2 || strings.Count(logs.String(), "not a DeviceId") != 1 || !strings.Contains(logs.String(), "config:retention") {
		t.Fatalf("foreign %d; logs %s", tb.Stats().Foreign, logs.String())
	}
	// Run 2 without the odd device: the odd key (ours: it has mde.change)
	// gets a tombstone, the foreign records stay.
	tb, logs, err = e.run("run-2", l[:1], true, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := state(e.read())
	if _, ok := got[odd]; ok || got["config:retention"] != "7d" || got[upper] != "x" || got[id1] != v1 || len(got) != 3 {
		t.Fatalf("table %v", got)
	}
	if tb.Stats().Foreign != 2 || tb.Stats().Removed != 1 || strings.Count(logs.String(), "not a DeviceId") != 1 {
		t.Fatalf("stats %+v", tb.Stats())
	}
}

func TestRecordsInTheWrongPartitionGetTombstones(t *testing.T) {
	e := newEnv(t, 3)
	id1, v1 := device(1, 1)
	wrong := (schema.Partition([]byte(id1), 3) + 1) % 3
	// As if the topic had fewer partitions when it was written.
	if err := e.writer.Write(context.Background(), []wire.KeyedMessage{{Key: []byte(id1), Value: []byte(v1),
		Pinned: true, Partition: wrong, Headers: []wire.Header{{Key: HeaderChange, Value: []byte(Added)}}}}); err != nil {
		t.Fatal(err)
	}
	l := []line{{0, 1, id1, v1}}
	tb, _, err := e.run("run-1", l, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := e.read()
	var inWrong, inRight []*string
	for _, r := range recs {
		if r.partition == wrong {
			inWrong = append(inWrong, r.value)
		} else {
			inRight = append(inRight, r.value)
		}
	}
	if len(inWrong) != 2 || inWrong[1] != nil || len(inRight) != 1 || *inRight[0] != v1 || tb.Stats().Misplaced != 1 {
		t.Fatalf("wrong partition %v, right %v", inWrong, inRight)
	}
	// The next run finds nothing to do.
	if _, _, err := e.run("run-2", l, true, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(e.read()); n != len(recs) {
		t.Fatalf("second run wrote %d records", n-len(recs))
	}
}

// TestLoadLogsNothingUntilLogLoad: a read-back that its run does not use
// (an unchanged export) leaves no trace in the log.
func TestLoadLogsNothingUntilLogLoad(t *testing.T) {
	e := newEnv(t, 2)
	if err := e.writer.Write(context.Background(), []wire.KeyedMessage{{Key: []byte("not-a-device"), Value: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	tb, err := New(Config{Topic: e.topic, RunID: "r", Kafka: e.k, Writer: e.writer, Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if err := tb.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logs.String() != "" {
		t.Fatalf("Load logged %s", logs.String())
	}
	tb.LogLoad()
	if !strings.Contains(logs.String(), `"message":"table topic read"`) || !strings.Contains(logs.String(), `"first_key":"\"not-a-device\""`) {
		t.Fatalf("LogLoad logged %s", logs.String())
	}
}

// stateProbe is a Writer that records whether the table still held its
// device state when it was asked to write.
type stateProbe struct {
	w         Writer
	tb        *Table
	calls     int
	withState int
}

func (p *stateProbe) Write(ctx context.Context, msgs []wire.KeyedMessage) error {
	p.calls++
	for i := range p.tb.parts {
		if p.tb.parts[i].entries != nil {
			p.withState++
			break
		}
	}
	return p.w.Write(ctx, msgs)
}

// TestCompleteReturnsTheStateBeforeWriting: the device state (48 bytes a
// device) is unmapped before Complete's writes allocate their batches, so
// that the two do not add up in the peak memory of a run.
func TestCompleteReturnsTheStateBeforeWriting(t *testing.T) {
	e := newEnv(t, 2)
	s1 := map[int]int{}
	for i := range 100 {
		s1[i] = 1
	}
	if _, _, err := e.run("run-1", snapshotOf(s1), true, nil); err != nil {
		t.Fatal(err)
	}
	s2 := map[int]int{}
	for i := 10; i < 100; i++ {
		s2[i] = 1 + i%2 // 10 removed, 45 changed
	}
	l2 := snapshotOf(s2)
	probe := &stateProbe{w: e.writer}
	tb, err := New(Config{Topic: e.topic, Export: schema.ExportInfoGathering, GeneratedTime: "2026-11-27T10:01:00Z", RunID: "run-2",
		Kafka: e.k, Writer: probe, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	probe.tb = tb
	ctx := context.Background()
	if err := tb.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, l := range l2 {
		if err := tb.Record(l.part, l.num, []byte(l.key), nil, []byte(l.value)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	tb.Close()
	if probe.calls < 2 || probe.withState != 0 {
		t.Fatalf("%d of %d writes while the state was held", probe.withState, probe.calls)
	}
	if got := changes(t, e.check("run-2", l2), l2); got[Removed] != 10 || got[Changed] != 45 {
		t.Fatalf("run wrote %v", got)
	}
}

// errRefused is failingWriter's failure.
var errRefused = errors.New("refused by the test")

// failingWriter fails every write after the first n calls, and counts
// the calls.
type failingWriter struct {
	w     Writer
	mu    sync.Mutex
	calls int
	after int
}

func (f *failingWriter) Write(ctx context.Context, msgs []wire.KeyedMessage) error {
	f.mu.Lock()
	f.calls++
	fail := f.calls > f.after
	f.mu.Unlock()
	if fail {
		return errRefused
	}
	return f.w.Write(ctx, msgs)
}

func (f *failingWriter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestWriteFailuresAreReported(t *testing.T) {
	e := newEnv(t, 2)
	s := map[int]int{}
	for i := range 50 {
		s[i] = 1
	}
	l := snapshotOf(s)
	// At Complete.
	_, _, err := e.run("run-1", l, true, func(c *Config) { c.Writer = &failingWriter{w: e.writer} })
	if err == nil || !errors.Is(err, errRefused) {
		t.Fatalf("Complete: %v", err)
	}
	// During the snapshot, once the buffer overflowed: Record fails.
	_, _, err = e.run("run-2", l, true, func(c *Config) {
		c.Writer = &failingWriter{w: e.writer}
		c.BufferBytes = 1 << 10
	})
	if err == nil || !errors.Is(err, errRefused) {
		t.Fatalf("Record during the snapshot: %v", err)
	}
	for _, r := range e.read() {
		if r.value == nil {
			t.Fatalf("tombstone written by a failed run")
		}
	}
}

// TestAFailedTableWriteIsNotRetriedAgain: the writer retries transient
// broker errors itself and its failures are final, so a table write that
// failed (here: the principal may not write the topic) is reported at
// once, after one call, instead of being retried for another
// RetryMaxElapsed on a writer that only repeats its failure.
func TestAFailedTableWriteIsNotRetriedAgain(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "devices"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		creq := req.(*kmsg.ProduceRequest)
		resp := creq.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range creq.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cfg := wiretest.Config(c.ListenAddrs())
	cfg.RetryMaxElapsed = 3 * time.Second
	k, err := wire.NewKafka(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	kw := k.NewKeyedWriter("devices", 2)
	defer kw.Close()
	w := &failingWriter{w: kw, after: 1 << 30}
	tb, err := New(Config{Topic: "devices", Export: schema.ExportInfoGathering, GeneratedTime: "2026-11-27T10:01:00Z", RunID: "run-1",
		Kafka: k, Writer: w, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	ctx := context.Background()
	if err := tb.Load(ctx); err != nil {
		t.Fatal(err)
	}
	id, v := device(1, 1)
	if err := tb.Record(0, 1, []byte(id), nil, []byte(v)); err != nil {
		t.Fatal(err)
	}
	err = tb.Complete(ctx)
	if !errors.Is(err, kerr.TopicAuthorizationFailed) && !strings.Contains(fmt.Sprint(err), "TOPIC_AUTHORIZATION_FAILED") && !strings.Contains(fmt.Sprint(err), "Topic Authorization Failed") {
		t.Fatalf("Complete = %v, want the authorization failure", err)
	}
	if n := w.count(); n != 1 {
		t.Fatalf("the table called its writer %d times for one failed write, want 1", n)
	}
}

func TestDigestStateLookups(t *testing.T) {
	var ps partState
	h := newHasher()
	var log []logEntry
	add := func(e entry) { log = append(log, logEntry{e, uint64(len(log))}) }
	for i := range 5000 {
		id, v := device(i, 1)
		did, _ := hexID([]byte(id))
		add(entry{id: did, d: h.sum([]byte(v))})
		if i%7 == 0 { // a newer record of the same device
			_, v2 := device(i, 2)
			add(entry{id: did, d: h.sum([]byte(v2))})
		}
		if i%11 == 0 { // deleted later
			add(entry{id: did, d: digest{n: tombstone}})
		}
	}
	if err := ps.build(log, func() {}, nil); err != nil {
		t.Fatal(err)
	}
	defer ps.release()
	for i := range 6000 {
		id, v := device(i, 1)
		if i%7 == 0 {
			_, v = device(i, 2)
		}
		did, _ := hexID([]byte(id))
		j, found := ps.find(&did)
		want := i < 5000 && i%11 != 0
		if found != want {
			t.Fatalf("device %d: found %v, want %v", i, found, want)
		}
		if found && ps.entries[j].d != h.sum([]byte(v)) {
			t.Fatalf("device %d: digest of an older record", i)
		}
	}
	// Ids that all share their first bytes land in one bucket.
	var crowd partState
	var clog []logEntry
	for i := range 3000 {
		var d id
		binary.BigEndian.PutUint32(d[16:], uint32(i*7))
		clog = append(clog, logEntry{entry{id: d, d: digest{n: 1}}, uint64(i)})
	}
	if err := crowd.build(clog, func() {}, nil); err != nil {
		t.Fatal(err)
	}
	defer crowd.release()
	for i := range 21000 {
		var d id
		binary.BigEndian.PutUint32(d[16:], uint32(i))
		if _, found := crowd.find(&d); found != (i%7 == 0) {
			t.Fatalf("crowded id %d: found %v", i, found)
		}
	}
	for _, bad := range []string{strings.Repeat("A", 40), strings.Repeat("0", 39) + "g", strings.Repeat("0", 39) + "/", strings.Repeat("0", 39) + ":", strings.Repeat("0", 39) + "\xff", strings.Repeat("0", 38)} {
		if _, ok := hexID([]byte(bad)); ok {
			t.Fatalf("%q accepted as a DeviceId", bad)
		}
	}
	for range 1000 {
		var x, y id
		_, _ = crand.Read(x[:])
		copy(y[:], x[:])
		y[rand.IntN(20)] ^= byte(1 + rand.IntN(255))
		if got, want := compareID(&x, &y), bytes.Compare(x[:], y[:]); got != want || compareID(&x, &x) != 0 {
			t.Fatalf("compareID(%x, %x) = %d, bytes.Compare %d", x, y, got, want)
		}
	}
	if d, ok := hexID([]byte(strings.Repeat("0f", 20))); !ok || string(d.appendHex(nil)) != strings.Repeat("0f", 20) {
		t.Fatal("hex round trip")
	}
}

func TestNewKeysGrowAndKeepClaims(t *testing.T) {
	nk := newNewKeys()
	defer nk.release()
	ids := make([]id, 50000)
	for i := range ids {
		// Ids that share their first bytes: placement must not depend on them.
		binary.BigEndian.PutUint64(ids[i][12:], uint64(i))
		if prev, err := nk.claim(&ids[i], uint64(i+1)); err != nil || prev != 0 {
			t.Fatalf("id %d: prev %d, %v", i, prev, err)
		}
	}
	for i := range ids {
		if prev, err := nk.claim(&ids[i], 99); err != nil || prev != uint64(i+1) {
			t.Fatalf("id %d claimed again: prev %d, want %d (%v)", i, prev, i+1, err)
		}
	}
	n := 0
	for i := range nk.shards {
		n += nk.shards[i].n
		if s := &nk.shards[i]; s.n*4 > len(s.slots)*3 {
			t.Fatalf("shard %d: %d of %d slots used", i, s.n, len(s.slots))
		}
	}
	if n != len(ids) {
		t.Fatalf("%d ids held, want %d", n, len(ids))
	}
}

func TestSortLogIsTheComparisonSort(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 1000, 20000} {
		var log []logEntry
		for i := range n {
			var d id
			if i > 0 && rand.IntN(4) == 0 {
				d = log[rand.IntN(len(log))].id // the same device again, later
			} else {
				_, _ = crand.Read(d[:])
			}
			log = append(log, logEntry{entry{id: d, d: digest{n: uint32(i)}}, uint64(i)})
		}
		want := slices.Clone(log)
		slices.SortFunc(want, compareLog)
		sortLog(log)
		if !slices.Equal(log, want) {
			t.Fatalf("%d records: sortLog differs from the comparison sort", n)
		}
	}
}
