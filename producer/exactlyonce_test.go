package producer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// faultClient wraps the real *Kafka and injects failures around chosen
// produce requests: before (the request is not sent) or after (the broker
// appended the batch, but its answer is replaced by an error, as when the
// answer is lost or is an error after the append).
type faultClient struct {
	*wire.Kafka
	mu    sync.Mutex
	fault func(topic string, partition int, batch []byte) (before, after error)
	// onAfter runs when an after error is about to be returned.
	onAfter func(topic string, partition int)
}

func (f *faultClient) Produce(ctx context.Context, topic string, partition int, batch []byte) error {
	var before, after error
	if f.fault != nil {
		f.mu.Lock()
		before, after = f.fault(topic, partition, batch)
		f.mu.Unlock()
	}
	if before != nil {
		return before
	}
	if err := f.Kafka.Produce(ctx, topic, partition, batch); err != nil {
		return err
	}
	if after != nil && f.onAfter != nil {
		f.onAfter(topic, partition)
	}
	return after
}

// batchHolds tells whether an uncompressed batch carries text (a marker
// kind, a line number header…).
func batchHolds(batch []byte, text string) bool { return bytes.Contains(batch, []byte(text)) }

// newPartsOf returns n parts of perPart records each and their expectation.
func newPartsOf(n, perPart int) (map[int]string, *expectation) {
	exp := newExpectation()
	contents := map[int]string{}
	for p := range n {
		pb := &partBuilder{idx: p, exp: exp}
		for i := range perPart {
			pb.record(i)
		}
		contents[p] = pb.b.String()
	}
	return contents, exp
}

// runFaulty runs a snapshot through f and checks that the topic holds every
// record and every marker exactly once with exact counts.
func runFaulty(t *testing.T, c *kfake.Cluster, k *wire.Kafka, f *faultClient, logs io.Writer) {
	t.Helper()
	const partitions = 3
	m := newManifest(t, 3)
	contents, exp := newPartsOf(3, 400)
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000,
		Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-faulty",
		RetryMaxElapsed: 30 * time.Second, Logger: zerolog.New(logs),
	}, newMemParts(contents), f)
	if err != nil {
		t.Fatal(err)
	}
	s.retryInitial = time.Millisecond
	s.batchBytes = 16 << 10 // many batches per partition
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Records != 1200 {
		t.Fatalf("Records = %d, want 1200", res.Records)
	}
	checkSnapshot(t, readTopic(t, c.ListenAddrs(), "records"), partitions, m, "run-faulty", exp)
}

// TestExactlyOnceWhenTheAnswerIsLost: the broker appends a batch but the
// producer never learns it (an error instead of the answer, or the answer
// lost with the connection); the batch is sent again and the topic still
// holds it once — for a record batch, for the start markers and for the end
// markers.
func TestExactlyOnceWhenTheAnswerIsLost(t *testing.T) {
	answers := map[string]error{
		"connection cut after the request was sent": io.ErrUnexpectedEOF,
		"REQUEST_TIMED_OUT after the append":        kafka.RequestTimedOut,
		"NOT_LEADER_OR_FOLLOWER after the append":   kafka.NotLeaderForPartition,
		"NOT_ENOUGH_REPLICAS_AFTER_APPEND":          kafka.NotEnoughReplicasAfterAppend,
	}
	targets := map[string]string{
		"record batch":   "mde.line\x022", // a batch holding line 2 of a part
		"start markers":  string(schema.MarkerStart),
		"end markers":    string(schema.MarkerEnd),
		"every 5th call": "",
	}
	for an, answer := range answers {
		for tn, target := range targets {
			t.Run(an+"/"+tn, func(t *testing.T) {
				c := newCluster(t, kfake.SeedTopics(3, "records"))
				k := newTestKafka(t, c, func(cfg *wire.Config) { cfg.Compression = "none" })
				var calls, faults int
				f := &faultClient{Kafka: k, fault: func(_ string, _ int, batch []byte) (error, error) {
					calls++
					hit := false
					if target == "" {
						hit = calls%5 == 0
					} else {
						// Each matching batch fails twice: the first retry
						// is ambiguous too.
						hit = batchHolds(batch, target) && faults < 6
					}
					if hit {
						faults++
						return nil, answer
					}
					return nil, nil
				}}
				var logs testutil.SyncBuffer
				runFaulty(t, c, k, f, &logs)
				if faults == 0 {
					t.Fatal("no fault was injected")
				}
				if !strings.Contains(logs.String(), "produce failed; retrying") {
					t.Errorf("retries not logged")
				}
			})
		}
	}
}

// TestExactlyOnceBrokerAnswersErrorAfterAppend uses the in-process
// broker's own faults: it appends the batch and answers REQUEST_TIMED_OUT
// or NOT_ENOUGH_REPLICAS_AFTER_APPEND, as a real broker does when
// replication takes longer than the request timeout.
func TestExactlyOnceBrokerAnswersErrorAfterAppend(t *testing.T) {
	for _, code := range []*kerr.Error{kerr.RequestTimedOut, kerr.NotEnoughReplicasAfterAppend} {
		for _, target := range []string{string(schema.MarkerStart), `"DeviceId"`, string(schema.MarkerEnd)} {
			t.Run(code.Message+"/"+target, func(t *testing.T) {
				c := newCluster(t, kfake.SeedTopics(3, "records"))
				k := newTestKafka(t, c, func(cfg *wire.Config) { cfg.Compression = "none" })
				var hits atomic.Int64
				c.Fault(kfake.Fault{
					Keys: []kmsg.Key{kmsg.Produce}, Topic: "records", Err: code, Count: 4,
					When: func(req kmsg.Request) bool {
						pr := req.(*kmsg.ProduceRequest)
						for _, tp := range pr.Topics {
							for _, p := range tp.Partitions {
								if bytes.Contains(p.Records, []byte(target)) {
									hits.Add(1)
									return true
								}
							}
						}
						return false
					},
				})
				runFaulty(t, c, k, &faultClient{Kafka: k}, io.Discard)
				if hits.Load() == 0 {
					t.Fatal("the broker fault never applied")
				}
			})
		}
	}
}

// TestExactlyOnceAcrossLeaderChange: after a batch was appended the
// partition's leader moves to another broker and the answer is
// NOT_LEADER_OR_FOLLOWER; the producer finds the new leader, sends the
// batch there, the broker recognises it, and the run logs the change.
func TestExactlyOnceAcrossLeaderChange(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(3, "records"))
	k := newTestKafka(t, c, func(cfg *wire.Config) { cfg.Compression = "none" })
	var moves atomic.Int64
	f := &faultClient{Kafka: k,
		fault: func(_ string, partition int, batch []byte) (error, error) {
			if moves.Load() > 0 || partition != 1 || !batchHolds(batch, `"DeviceId"`) {
				return nil, nil
			}
			return nil, kafka.NotLeaderForPartition
		},
		onAfter: func(topic string, partition int) {
			from := c.LeaderFor(topic, int32(partition))
			if err := c.MoveTopicPartition(topic, int32(partition), (from+1)%3); err != nil {
				t.Errorf("moving the leader: %v", err)
			}
			moves.Add(1)
		},
	}
	var logs testutil.SyncBuffer
	runFaulty(t, c, k, f, &logs)
	if moves.Load() != 1 {
		t.Fatalf("the leader was moved %d times, want 1", moves.Load())
	}
	if !strings.Contains(logs.String(), "partition leader changed") {
		t.Errorf("leader change not logged:\n%s", logs.String())
	}
}

// TestBrokerRefusesRecordAsTooLarge: the topic's max.message.bytes is below
// one record's size. The broker refuses the batch holding it; the batch is
// split until that record alone is refused; it is rejected and its
// dead-letter message carries the raw line, the rest is published once.
func TestBrokerRefusesRecordAsTooLarge(t *testing.T) {
	const partitions = 2
	c := newCluster(t)
	createTopic(t, c, "records", partitions, map[string]string{"max.message.bytes": "40000"})
	createTopic(t, c, "dlq", 1, nil)
	k := newTestKafka(t, c, func(cfg *wire.Config) { cfg.Compression = "none"; cfg.DLQTopic = "dlq" })
	m := newManifest(t, 1)
	exp := newExpectation()
	pb := &partBuilder{idx: 0, exp: exp}
	var big string
	for i := range 100 {
		if i == 40 {
			big = `{"DeviceId":"` + deviceID(5, 5) + `","Blob":"` + randomHex(t, 60000) + `"}`
			pb.bad(big, big)
			continue
		}
		pb.record(i)
	}
	var logs testutil.SyncBuffer
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", DLQTopic: "dlq", Partitions: partitions, DLQPartitions: 1, RunID: "run-big",
		Logger: zerolog.New(&logs),
	}, newMemParts(map[int]string{0: pb.b.String()}), k)
	if err != nil {
		t.Fatal(err)
	}
	s.retryInitial = time.Millisecond
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Records != 99 || res.Rejected != 1 {
		t.Fatalf("result %+v, want 99 records and 1 rejected", res)
	}
	checkSnapshot(t, readTopic(t, c.ListenAddrs(), "records"), partitions, m, "run-big", exp)
	dlq := readTopic(t, c.ListenAddrs(), "dlq")
	if len(dlq) != 1 {
		t.Fatalf("DLQ holds %d messages, want 1", len(dlq))
	}
	if line, _ := recHeader(dlq[0], schema.HeaderLine); line != "41" {
		t.Errorf("dead letter of line %s, want 41", line)
	}
	if reason, _ := recHeader(dlq[0], schema.HeaderError); !strings.Contains(reason, "MESSAGE_TOO_LARGE") {
		t.Errorf("dead letter reason %q", reason)
	}
	if string(dlq[0].Value) != big {
		t.Errorf("dead letter value is %d bytes, want the raw line (%d bytes)", len(dlq[0].Value), len(big))
	}
	if strings.Contains(logs.String(), "Blob") {
		t.Errorf("logs contain record content")
	}
}

// TestRecordSizeBoundsKeyValueAndHeaders: KAFKA_MAX_MESSAGE_BYTES bounds a
// record's key, value and headers together: a line whose record is exactly
// at the bound is published, one byte more is rejected.
func TestRecordSizeBoundsKeyValueAndHeaders(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 1)
	const limit = 4096
	line := func(i, n int) string { // a record line of exactly n bytes
		head := `{"DeviceId":"` + deviceID(0, i) + `","Pad":"`
		return head + strings.Repeat("p", n-len(head)-2) + `"}`
	}
	// key 40 + value + headers: names and values of the seven headers
	// (mde.key holds the DeviceId again).
	hdrs := len(schema.HeaderExport) + len(m.Export) + len(schema.HeaderGeneratedTime) + len(m.GeneratedTime) +
		len(schema.HeaderRunID) + len("r") + len(schema.HeaderPart) + 1 + len(schema.HeaderLine) + 1 +
		len(schema.HeaderContentType) + len(schema.ContentTypeJSON) + len(schema.HeaderKey) + 40
	fits := limit - 40 - hdrs
	exp := newExpectation()
	exp.records[lineKey{0, 1}] = line(1, fits)
	exp.rejected[lineKey{0, 2}] = ""
	content := line(1, fits) + "\n" + line(2, fits+1) + "\n"
	s, err := NewSnapshot(SnapshotConfig{RetryMaxElapsed: 2 * time.Minute, Manifest: m, Topic: "records", Partitions: 1, RunID: "r", MaxMessageBytes: limit},
		newMemParts(map[int]string{0: content}), k)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	if err != nil || res.Records != 1 || res.Rejected != 1 {
		t.Fatalf("Run = %+v, %v; want the record at the bound published and the one above rejected", res, err)
	}
	checkSnapshot(t, readTopic(t, c.ListenAddrs(), "records"), 1, m, "r", exp)
}

// TestRetriesExhaustedAborts: records that cannot be written fail the run
// after RetryMaxElapsed; the abort markers, from a producer of their own,
// follow the start markers.
func TestRetriesExhaustedAborts(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "records"))
	k := newTestKafka(t, c, func(cfg *wire.Config) { cfg.Compression = "none" })
	f := &faultClient{Kafka: k, fault: func(_ string, _ int, batch []byte) (error, error) {
		if batchHolds(batch, `"DeviceId"`) {
			return errors.New("broker gone"), nil
		}
		return nil, nil
	}}
	m := newManifest(t, 1)
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000,
		Manifest: m, Topic: "records", Partitions: 2, RunID: "r", RetryMaxElapsed: 50 * time.Millisecond,
	}, newMemParts(map[int]string{0: recordLine(0, 0) + "\n"}), f)
	if err != nil {
		t.Fatal(err)
	}
	s.retryInitial = time.Millisecond
	res, err := s.Run(context.Background())
	if err == nil || !res.Aborted || !strings.Contains(err.Error(), "broker gone") {
		t.Fatalf("Run = %+v, %v; want abort after retries", res, err)
	}
	checkAborted(t, readTopic(t, c.ListenAddrs(), "records"), 2, "r")
}

// TestStartMarkersUnwritable: when no start marker can be written, the run
// fails without abort markers (nothing to bracket).
func TestStartMarkersUnwritable(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "records"))
	k := newTestKafka(t, c, nil)
	f := &faultClient{Kafka: k, fault: func(string, int, []byte) (error, error) {
		return errors.New("dial tcp 127.0.0.1:9092: connection refused"), nil
	}}
	m := newManifest(t, 1)
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, Manifest: m, Topic: "records", Partitions: 2, RunID: "r", RetryMaxElapsed: 30 * time.Millisecond},
		newMemParts(nil), f)
	if err != nil {
		t.Fatal(err)
	}
	s.retryInitial = time.Millisecond
	res, err := s.Run(context.Background())
	if err == nil || res.Aborted || !strings.Contains(err.Error(), "snapshot-start") {
		t.Fatalf("Run = %+v, %v; want a start-marker error without abort", res, err)
	}
	if got := readTopic(t, c.ListenAddrs(), "records"); len(got) != 0 {
		t.Fatalf("topic holds %d messages", len(got))
	}
}

// createTopic creates a topic with configs on the in-process cluster.
func createTopic(t *testing.T, c *kfake.Cluster, topic string, partitions int32, configs map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cfg := map[string]*string{}
	for k, v := range configs {
		cfg[k] = &v
	}
	resp, err := kadm.NewClient(cl).CreateTopic(context.Background(), partitions, 1, cfg, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatal(err)
	}
}

// randomHex is incompressible JSON-safe padding.
func randomHex(t testing.TB, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
