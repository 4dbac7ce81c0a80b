package producer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// recordingObserver remembers what it was told; at Complete it reads the
// topic back to check that every snapshot-end is there already.
type recordingObserver struct {
	mu        sync.Mutex
	records   map[lineKey]string
	dupes     int
	completes int
	failAt    int64 // Record fails for this line (0: never)
	failDone  error // Complete returns it
	atDone    func()
}

func (o *recordingObserver) Record(part int, line int64, key, natural, value []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failAt != 0 && line == o.failAt {
		return errors.New("observer refuses line")
	}
	if id, err := schema.DeviceID(value); err != nil || string(id) != string(key) {
		return errors.New("key is not the value's DeviceId")
	}
	if string(natural) != string(key) { // InfoGathering: mde.key is the DeviceId
		return errors.New("the natural key given is not the record's mde.key")
	}
	k := lineKey{part, line}
	if _, ok := o.records[k]; ok {
		o.dupes++
	}
	o.records[k] = string(value)
	return nil
}

func (o *recordingObserver) Complete(context.Context) error {
	o.mu.Lock()
	o.completes++
	o.mu.Unlock()
	if o.atDone != nil {
		o.atDone()
	}
	return o.failDone
}

func TestObserverSeesEveryPublishedRecordOnceThenCompletion(t *testing.T) {
	const partitions = 3
	c := newCluster(t, kfake.SeedTopics(partitions, "records", "dlq"),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "40000"}))
	k := newTestKafka(t, c, func(cfg *wire.Config) { cfg.Compression = "none"; cfg.DLQTopic = "dlq" })
	m := newManifest(t, 2)
	exp := newExpectation()
	contents := map[int]string{}
	for p := range 2 {
		pb := &partBuilder{idx: p, exp: exp}
		for i := range 300 {
			switch {
			case p == 1 && i == 17: // refused by the broker as too large
				pb.bad(`{"DeviceId":"`+deviceID(9, 9)+`","Blob":"`+randomHex(t, 60000)+`"}`, "")
			case i == 50:
				pb.bad(`not json`, "not json")
			default:
				pb.record(i)
			}
		}
		contents[p] = pb.b.String()
	}
	obs := &recordingObserver{records: map[lineKey]string{}}
	obs.atDone = func() {
		// Every partition's last message is the run's snapshot-end.
		for p, prs := range byPartition(readTopic(t, c.ListenAddrs(), "records"), partitions) {
			if last := decodeMarker(t, prs[len(prs)-1]); last.Kind != schema.MarkerEnd {
				t.Errorf("Complete called while partition %d ends with %s", p, last.Kind)
			}
		}
	}
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", DLQTopic: "dlq", Partitions: partitions, DLQPartitions: partitions, RunID: "run-obs",
		Workers: 2, Logger: zerolog.Nop(), Observer: obs,
	}, newMemParts(contents), k)
	if err != nil {
		t.Fatal(err)
	}
	s.retryInitial, s.batchBytes = time.Millisecond, 16<<10 // many batches
	res, err := s.Run(context.Background())
	if err != nil || !IsComplete(err) {
		t.Fatalf("Run: %v", err)
	}
	if obs.completes != 1 || obs.dupes != 0 {
		t.Fatalf("Complete called %d times, %d records observed twice", obs.completes, obs.dupes)
	}
	if int64(len(obs.records)) != res.Records || len(obs.records) != len(exp.records) {
		t.Fatalf("observed %d records, published %d, expected %d", len(obs.records), res.Records, len(exp.records))
	}
	for k, v := range exp.records {
		if obs.records[k] != v {
			t.Fatalf("part %d line %d: observed %q", k.part, k.line, obs.records[k])
		}
	}
}

func TestObserverRecordErrorAbortsTheRun(t *testing.T) {
	const partitions = 2
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 1)
	pb := &partBuilder{idx: 0, exp: newExpectation()}
	for i := range 100 {
		pb.record(i)
	}
	obs := &recordingObserver{records: map[lineKey]string{}, failAt: 70}
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-obs-fail", Logger: zerolog.Nop(), Observer: obs,
	}, newMemParts(map[int]string{0: pb.b.String()}), k)
	if err != nil {
		t.Fatal(err)
	}
	s.batchBytes = 4 << 10
	res, err := s.Run(context.Background())
	if err == nil || IsComplete(err) || !res.Aborted || !strings.Contains(err.Error(), "observer refuses line") {
		t.Fatalf("Run: %v, result %+v; want the run aborted by the observer's error", err, res)
	}
	if obs.completes != 0 {
		t.Fatalf("Complete called on an aborted run")
	}
	checkAborted(t, readTopic(t, c.ListenAddrs(), "records"), partitions, "run-obs-fail")
}

func TestObserverCompleteErrorLeavesTheSnapshotComplete(t *testing.T) {
	const partitions = 2
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 1)
	exp := newExpectation()
	pb := &partBuilder{idx: 0, exp: exp}
	for i := range 40 {
		pb.record(i)
	}
	failure := errors.New("table topic unavailable")
	obs := &recordingObserver{records: map[lineKey]string{}, failDone: failure}
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-obs-done", Logger: zerolog.Nop(), Observer: obs,
	}, newMemParts(map[int]string{0: pb.b.String()}), k)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	var ce *CompleteError
	if !errors.As(err, &ce) || !errors.Is(err, failure) || !IsComplete(err) || res.Aborted || res.Records != 40 {
		t.Fatalf("Run: %v, result %+v; want a CompleteError and a complete snapshot", err, res)
	}
	checkSnapshot(t, readTopic(t, c.ListenAddrs(), "records"), partitions, m, "run-obs-done", exp)
}
