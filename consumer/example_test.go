package consumer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/consumer"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// A program that keeps the current device table of a tvm2kafka topic: it
// swaps in each complete snapshot and ignores aborted runs.
func Example() {
	// An in-process broker whose topic holds three runs of tvm2kafka:
	// run-1 complete, run-2 aborted, run-3 complete.
	brokers, stop := exampleBroker("mde.infogathering")
	defer stop()

	r, err := consumer.NewReader(consumer.Config{
		Brokers: brokers,
		Topic:   "mde.infogathering",
		From:    consumer.FromBeginning, // every snapshot the topic holds; the default is the newest only
	})
	if err != nil {
		log.Fatal(err)
	}
	devices := map[string]string{} // DeviceId → line: the current snapshot
	discarded := 0
	_, err = r.Read(context.Background(), consumer.Handler{
		Snapshot: func(_ context.Context, s *consumer.Snapshot) error {
			next := make(map[string]string, s.Records)
			for _, share := range s.Shares { // one per partition, records staged in memory
				for _, rec := range share.Records {
					next[string(rec.Key)] = string(rec.Value)
				}
			}
			devices = next
			fmt.Printf("%s of %s: %d devices\n", s.RunID, s.GeneratedTime, len(devices))
			return nil
		},
		Discard: func(_ context.Context, d consumer.Discard) error {
			discarded++ // d.Reason: aborted, superseded or count mismatch
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d partition shares discarded\n", discarded)
	// Output:
	// run-1 of 2026-11-27T10:01:00Z: 120 devices
	// run-3 of 2026-11-27T10:01:00Z: 100 devices
	// 3 partition shares discarded
}

// exampleBroker starts an in-process Kafka-compatible broker with topic of
// three partitions holding three runs, as tvm2kafka writes them.
func exampleBroker(topic string) ([]string, func()) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
	if err != nil {
		log.Fatal(err)
	}
	b := newBuilder(exampleT{}, c.ListenAddrs(), topic, 3)
	b.snapshot("run-1", 0, 120, 1, schema.MarkerEnd)
	b.snapshot("run-2", 0, 110, 2, schema.MarkerAbort)
	b.snapshot("run-3", 20, 120, 3, schema.MarkerEnd)
	b.flush()
	return c.ListenAddrs(), func() { b.w.Close(); c.Close() }
}

// exampleT lets the test helpers run in an example.
type exampleT struct{}

func (exampleT) Helper()           {}
func (exampleT) Fatal(args ...any) { log.Fatal(args...) }
func (exampleT) Cleanup(func())    {}
