package producer

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestTailAfterASnapshotIsUnchanged: the tail of a topic that a snapshot
// just completed reads as unchanged for that export and generatedTime.
func TestTailAfterASnapshotIsUnchanged(t *testing.T) {
	const partitions = 3
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 2)
	contents := map[int]string{}
	for pi := range 2 {
		var s string
		for i := range 200 {
			s += recordLine(pi, i) + "\n"
		}
		contents[pi] = s
	}
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute, Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-1", Workers: 2, Logger: zerolog.Nop()},
		newMemParts(contents), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	tail, err := k.Tail(context.Background(), "records", partitions)
	if err != nil {
		t.Fatal(err)
	}
	if !tail.Unchanged(m.Export, m.GeneratedTime) {
		t.Fatalf("the topic ends with the snapshot of %s, but reads as changed: %+v", m.GeneratedTime, tail.Partitions)
	}
	if tail.Unchanged(m.Export, "2024-05-02T10:00:00Z") || tail.Unchanged("OtherExport", m.GeneratedTime) {
		t.Fatal("another export or generatedTime reads as unchanged")
	}
	if e, g, ok := tail.Complete(); !ok || e != m.Export || g != m.GeneratedTime {
		t.Fatalf("Complete() = %q %q %v", e, g, ok)
	}
	if len(tail.Unfinished()) != 0 {
		t.Fatalf("unfinished runs after a complete snapshot: %+v", tail.Unfinished())
	}
	for _, pm := range tail.Partitions {
		if pm.Marker == nil || pm.Marker.RunID != "run-1" || pm.Marker.Records == nil || *pm.Marker.Records != 400 {
			t.Fatalf("partition %d: marker %+v", pm.Partition, pm.Marker)
		}
		if time.Since(pm.Time) > time.Minute || time.Until(pm.Time) > time.Minute {
			t.Fatalf("partition %d: Kafka timestamp %v is not the time of writing", pm.Partition, pm.Time)
		}
	}
}
