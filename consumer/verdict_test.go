package consumer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/consumer"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// TestDiscardCarriesTheStage: a share thrown away (aborted, superseded)
// is handed over with the stage that kept its records, so that a consumer
// can roll back what it wrote.
func TestDiscardCarriesTheStage(t *testing.T) {
	brokers := newCluster(t, "mde", 1)
	b := newBuilder(t, brokers, "mde", 1)
	b.snapshot("r1", 0, 30, 1, schema.MarkerAbort)
	b.flush()
	stages := map[string]*consumer.MemoryStage{}
	r, err := consumer.NewReader(consumer.Config{Brokers: brokers, Topic: "mde", From: consumer.FromBeginning,
		NewStage: func(_ int, start consumer.Marker) consumer.Stage {
			s := &consumer.MemoryStage{}
			stages[start.RunID] = s
			return s
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ev events
	if _, err := r.Read(context.Background(), ev.handler()); err != nil {
		t.Fatal(err)
	}
	if len(ev.discards) != 1 {
		t.Fatalf("%d discards", len(ev.discards))
	}
	d := ev.discards[0]
	if d.Reason != consumer.Aborted || d.Stage != consumer.Stage(stages["r1"]) || len(stages["r1"].Records) != 30 || d.Staged != 30 {
		t.Fatalf("discard %+v, stage of r1 holds %d records", d, len(stages["r1"].Records))
	}
}

// TestFollowWithOneFetchAtATime: Concurrency bounds the fetches in flight
// of Follow without starving a partition: every partition still hands
// over its share.
func TestFollowWithOneFetchAtATime(t *testing.T) {
	const n = 4
	brokers := newCluster(t, "mde", n)
	b := newBuilder(t, brokers, "mde", n)
	r, err := consumer.NewReader(consumer.Config{Brokers: brokers, Topic: "mde", Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := follow(t, r, func() {
		b.snapshot("r1", 0, 50, 1, schema.MarkerEnd)
		b.flush()
	})
	checkSnapshot(t, s, "r1", n, 0, 50, 1)
}

// TestVerdict: the newest snapshot is complete only when every partition
// holds its start, its end and partitionRecords records of it.
func TestVerdict(t *testing.T) {
	const n = 3
	brokers := newCluster(t, "mde", n)
	b := newBuilder(t, brokers, "mde", n)
	verdict := func() *consumer.Verdict {
		t.Helper()
		_, st := read(t, brokers, "mde", consumer.FromNewestSnapshot)
		return st.Verdict()
	}
	if v := verdict(); v.Complete || v.RunID != "" || len(v.Problems) != 1 || !strings.Contains(v.Problems[0], "no snapshot") {
		t.Fatalf("empty topic: %+v", v)
	}
	b.snapshot("r1", 0, 60, 1, schema.MarkerEnd)
	b.flush()
	v := verdict()
	if !v.Complete || v.RunID != "r1" || v.Records != 60 || v.Claimed != 60 || len(v.Partitions) != n || len(v.Problems) != 0 {
		t.Fatalf("complete snapshot: %+v", v)
	}
	for _, p := range v.Partitions {
		if !p.Start || !p.End || p.Aborted || p.PartitionRecords == nil || *p.PartitionRecords != p.Records {
			t.Fatalf("partition %+v", p)
		}
	}
	// A newer run still publishing in one partition only.
	b.start("r2", 1)
	b.flush()
	v = verdict()
	if v.Complete || v.RunID != "r2" || len(v.Problems) != n {
		t.Fatalf("a run started in one partition: %+v", v)
	}
	// It aborts.
	b.marker("r2", schema.MarkerAbort, 1)
	b.flush()
	if v = verdict(); v.Complete || !v.Partitions[1].Aborted || !strings.Contains(strings.Join(v.Problems, "\n"), "snapshot-abort") {
		t.Fatalf("an aborted run: %+v", v)
	}
}
