package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/consumer"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// events is what a Handler was told.
type events struct {
	shares    []*consumer.Share
	snapshots []*consumer.Snapshot
	discards  []consumer.Discard
}

func (e *events) handler() consumer.Handler {
	return consumer.Handler{
		Share:    func(_ context.Context, s *consumer.Share) error { e.shares = append(e.shares, s); return nil },
		Snapshot: func(_ context.Context, s *consumer.Snapshot) error { e.snapshots = append(e.snapshots, s); return nil },
		Discard:  func(_ context.Context, d consumer.Discard) error { e.discards = append(e.discards, d); return nil },
	}
}

func read(t *testing.T, brokers []string, topic string, from consumer.From) (*events, *consumer.Status) {
	t.Helper()
	r, err := consumer.NewReader(consumer.Config{Brokers: brokers, Topic: topic, From: from})
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	st, err := r.Read(context.Background(), ev.handler())
	if err != nil {
		t.Fatal(err)
	}
	return &ev, st
}

// checkSnapshot asserts that snap holds exactly devices [from, to) at version v.
func checkSnapshot(t *testing.T, snap *consumer.Snapshot, run string, partitions, from, to, v int) {
	t.Helper()
	if snap.RunID != run || len(snap.Shares) != partitions || snap.Records != int64(to-from) {
		t.Fatalf("snapshot %s with %d shares and %d records, want %s, %d, %d", snap.RunID, len(snap.Shares), snap.Records, run, partitions, to-from)
	}
	want := map[string]string{}
	for i := from; i < to; i++ {
		id, line := device(i, v)
		want[id] = line
	}
	for p, s := range snap.Shares {
		if s.Partition != p || s.RunID != run || s.Count != int64(len(s.Records)) || s.Start.Marker.Kind != schema.MarkerStart || s.End.Marker.Kind != schema.MarkerEnd {
			t.Fatalf("share %d: %+v", p, s)
		}
		for _, r := range s.Records {
			if want[string(r.Key)] != string(r.Value) || r.Partition != p || schema.Partition(r.Key, partitions) != p {
				t.Fatalf("partition %d offset %d: unexpected record %s", p, r.Offset, r.Key)
			}
			if run2, _ := r.Header(schema.HeaderRunID); run2 != run {
				t.Fatalf("record of run %q in %s's share", run2, run)
			}
			delete(want, string(r.Key))
		}
	}
	if len(want) != 0 {
		t.Fatalf("%d devices missing from the snapshot", len(want))
	}
}

func TestReadHandsOverCompleteSharesAndTheWholeSnapshot(t *testing.T) {
	brokers := newCluster(t, "mde", 4)
	b := newBuilder(t, brokers, "mde", 4)
	b.snapshot("r1", 0, 500, 1, schema.MarkerEnd)
	b.flush()
	ev, st := read(t, brokers, "mde", consumer.FromNewestSnapshot)
	if len(ev.shares) != 4 || len(ev.snapshots) != 1 || len(ev.discards) != 0 {
		t.Fatalf("%d shares, %d snapshots, %d discards", len(ev.shares), len(ev.snapshots), len(ev.discards))
	}
	checkSnapshot(t, ev.snapshots[0], "r1", 4, 0, 500, 1)
	for _, ps := range st.Partitions {
		if !ps.Complete() || ps.RunID != "r1" || ps.From != 0 || ps.Ignored != 0 {
			t.Fatalf("status %+v", ps)
		}
	}
}

func TestReadIgnoresOtherRunsAndDiscardsBrokenShares(t *testing.T) {
	const n = 3
	brokers := newCluster(t, "mde", n)
	b := newBuilder(t, brokers, "mde", n)
	// r1 complete; r2 aborted; r3 interleaved with late records of a dead
	// run r0 and complete; r4 superseded by r5 in partition 0 only, then
	// r5 complete everywhere.
	b.snapshot("r1", 0, 300, 1, schema.MarkerEnd)
	b.snapshot("r2", 0, 300, 2, schema.MarkerAbort)
	b.start("r0")
	b.start("r3")
	for i := range 300 {
		id, line := device(i, 3)
		b.record("r3", i+1, id, line)
		if i%50 == 0 {
			b.record("r0", i+1, id, "stale")
		}
	}
	b.marker("r3", schema.MarkerEnd)
	b.flush()

	ev, _ := read(t, brokers, "mde", consumer.FromBeginning)
	if len(ev.snapshots) != 2 {
		t.Fatalf("%d snapshots, want r1 and r3", len(ev.snapshots))
	}
	checkSnapshot(t, ev.snapshots[0], "r1", n, 0, 300, 1)
	checkSnapshot(t, ev.snapshots[1], "r3", n, 0, 300, 3)
	reasons := map[string]int{}
	for _, d := range ev.discards {
		reasons[d.RunID+" "+string(d.Reason)]++
	}
	if reasons["r2 aborted"] != n || reasons["r0 superseded"] != n || len(ev.discards) != 2*n {
		t.Fatalf("discards %v", reasons)
	}

	// A count that does not match, and a run that never ends in one partition.
	b.start("r4")
	for i := range 30 {
		id, line := device(i, 4)
		b.record("r4", i+1, id, line)
	}
	b.counts["r4"][1]++ // snapshot-end of partition 1 claims one record too many
	b.marker("r4", schema.MarkerEnd)
	b.flush()
	ev, st := read(t, brokers, "mde", consumer.FromNewestSnapshot)
	if len(ev.snapshots) != 0 || len(ev.discards) != 1 || ev.discards[0].Reason != consumer.CountMismatch || ev.discards[0].Partition != 1 {
		t.Fatalf("snapshots %d, discards %+v", len(ev.snapshots), ev.discards)
	}
	if st.Partitions[1].Complete() || !st.Partitions[0].Complete() {
		t.Fatalf("status %+v", st.Partitions)
	}
}

func TestReadStartsAtTheNewestSnapshotAndReadsAboutOne(t *testing.T) {
	const n, per, runs = 3, 2000, 10
	brokers := newCluster(t, "mde", n)
	b := newBuilder(t, brokers, "mde", n)
	for r := range runs {
		b.snapshot(fmt.Sprintf("r%d", r), 0, per, r, schema.MarkerEnd)
		b.flush()
	}
	ev, st := read(t, brokers, "mde", consumer.FromNewestSnapshot)
	if len(ev.snapshots) != 1 || len(ev.shares) != n {
		t.Fatalf("%d snapshots, %d shares, want the newest only", len(ev.snapshots), len(ev.shares))
	}
	checkSnapshot(t, ev.snapshots[0], "r9", n, 0, per, 9)
	// One snapshot is per+2n messages; the probes fetch whole batches
	// (at most 500 messages each here).
	if st.Messages > per+2*n+2*n*500 {
		t.Fatalf("read %d messages for a snapshot of %d", st.Messages, per)
	}
	t.Logf("newest of %d snapshots of %d records: read %d messages in %d fetches", runs, per, st.Messages, st.Fetches)

	// The newest run aborted: the search goes backwards to its start.
	b.snapshot("r10", 0, per, 10, schema.MarkerAbort)
	b.flush()
	ev, st = read(t, brokers, "mde", consumer.FromNewestSnapshot)
	if len(ev.snapshots) != 0 || len(ev.discards) != n {
		t.Fatalf("%d snapshots, %d discards", len(ev.snapshots), len(ev.discards))
	}
	for _, ps := range st.Partitions {
		if ps.RunID != "r10" || ps.Finish == nil || ps.Finish.Marker.Kind != schema.MarkerAbort || ps.Complete() {
			t.Fatalf("status %+v", ps)
		}
	}
	if st.Messages > 4*(per+2*n) {
		t.Fatalf("read %d messages to find an aborted snapshot of %d", st.Messages, per)
	}
}

func TestReadContinuesAndFollows(t *testing.T) {
	const n = 2
	brokers := newCluster(t, "mde", n)
	b := newBuilder(t, brokers, "mde", n)
	b.snapshot("r1", 0, 100, 1, schema.MarkerEnd)
	b.flush()
	r, err := consumer.NewReader(consumer.Config{Brokers: brokers, Topic: "mde"})
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	if _, err := r.Read(context.Background(), ev.handler()); err != nil || len(ev.snapshots) != 1 {
		t.Fatalf("first read: %v, %d snapshots", err, len(ev.snapshots))
	}
	b.snapshot("r2", 50, 170, 2, schema.MarkerEnd)
	b.flush()
	if _, err := r.Read(context.Background(), ev.handler()); err != nil || len(ev.snapshots) != 2 {
		t.Fatalf("second read: %v, %d snapshots", err, len(ev.snapshots))
	}
	checkSnapshot(t, ev.snapshots[1], "r2", n, 50, 170, 2)

	// Follow hands over a snapshot written while it runs.
	s := follow(t, r, func() {
		b.snapshot("r3", 0, 10, 3, schema.MarkerEnd)
		b.flush()
	})
	checkSnapshot(t, s, "r3", n, 0, 10, 3)
}

// follow runs r.Follow, calls write, and returns the first snapshot Follow
// hands over; then it stops Follow and checks that it ended with the
// cancellation.
func follow(t *testing.T, r *consumer.Reader, write func()) *consumer.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan *consumer.Snapshot, 1)
	done := make(chan error, 1)
	go func() {
		done <- r.Follow(ctx, consumer.Handler{Snapshot: func(_ context.Context, s *consumer.Snapshot) error {
			select {
			case got <- s:
			default:
			}
			return nil
		}})
	}()
	write()
	var s *consumer.Snapshot
	select {
	case s = <-got:
	case <-ctx.Done():
		t.Fatal("Follow did not hand over the new snapshot")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow ended with %v", err)
	}
	return s
}

// countStage counts instead of keeping records (stages of different
// partitions are used concurrently).
type countStage struct{ n *atomic.Int64 }

func (c countStage) Add(*consumer.Record) error { c.n.Add(1); return nil }

func TestCustomStageAndErrors(t *testing.T) {
	brokers := newCluster(t, "mde", 2)
	b := newBuilder(t, brokers, "mde", 2)
	b.snapshot("r1", 0, 40, 1, schema.MarkerEnd)
	b.flush()
	var added atomic.Int64
	r, err := consumer.NewReader(consumer.Config{Brokers: brokers, Topic: "mde",
		NewStage: func(int, consumer.Marker) consumer.Stage { return countStage{&added} }})
	if err != nil {
		t.Fatal(err)
	}
	var ev events
	if _, err := r.Read(context.Background(), ev.handler()); err != nil {
		t.Fatal(err)
	}
	if added.Load() != 40 || len(ev.snapshots) != 1 || ev.snapshots[0].Shares[0].Records != nil {
		t.Fatalf("staged %d, snapshots %d", added.Load(), len(ev.snapshots))
	}

	boom := errors.New("handler failed")
	r, _ = consumer.NewReader(consumer.Config{Brokers: brokers, Topic: "mde"})
	if _, err := r.Read(context.Background(), consumer.Handler{Share: func(context.Context, *consumer.Share) error { return boom }}); !errors.Is(err, boom) {
		t.Fatalf("handler error: %v", err)
	}
	r, _ = consumer.NewReader(consumer.Config{Brokers: brokers, Topic: "nope"})
	if _, err := r.Read(context.Background(), consumer.Handler{}); !errors.Is(err, consumer.ErrNoTopic) {
		t.Fatalf("missing topic: %v", err)
	}
	if _, err := consumer.NewReader(consumer.Config{}); err == nil {
		t.Fatal("no brokers accepted")
	}
	if _, err := consumer.NewReader(consumer.Config{Brokers: brokers}); err == nil || !strings.Contains(err.Error(), "no topic") {
		t.Fatalf("no topic: %v", err)
	}
}

func TestEmptyTopicHasNoSnapshot(t *testing.T) {
	brokers := newCluster(t, "mde", 3)
	ev, st := read(t, brokers, "mde", consumer.FromNewestSnapshot)
	if len(ev.shares)+len(ev.snapshots)+len(ev.discards) != 0 || len(st.Partitions) != 3 {
		t.Fatalf("events on an empty topic: %+v %+v", ev, st)
	}
	ids := []string{}
	for _, ps := range st.Partitions {
		if ps.Start != nil {
			ids = append(ids, ps.RunID)
		}
	}
	sort.Strings(ids)
	if len(ids) != 0 {
		t.Fatalf("runs %v", ids)
	}
}
