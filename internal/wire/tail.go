package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"golang.org/x/sync/errgroup"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// The state that decides whether a run publishes lives in the topic
// itself: the newest message of every partition. Kafka.Tail finds it by
// offset — one ListOffsets request for the end offsets, then one fetch per
// partition at end−1 — so the cost does not depend on how much the topic
// holds.

// TailMessage is the newest message of one partition.
type TailMessage struct {
	Partition int
	// Offset of the newest message; -1 when the partition holds none.
	Offset int64
	// Time is the Kafka message timestamp (CreateTime of the producer, or
	// LogAppendTime when the topic is configured so).
	Time    time.Time
	Key     []byte
	Headers map[string]string
	// Marker is the decoded value of a marker message (key mde.snapshot);
	// nil for records and for values that are not a marker.
	Marker *schema.Marker
}

// Empty reports whether the partition holds no message.
func (m TailMessage) Empty() bool { return m.Offset < 0 }

// RunID is the message's mde.run_id header ("" for a foreign message).
func (m TailMessage) RunID() string { return m.Headers[schema.HeaderRunID] }

// MarkerKind is the message's mde.marker header when it is a marker
// message, "" otherwise.
func (m TailMessage) MarkerKind() schema.MarkerKind {
	if string(m.Key) != schema.MarkerKey {
		return ""
	}
	return schema.MarkerKind(m.Headers[schema.HeaderMarker])
}

// finished reports whether the message ends its run in this partition.
func (m TailMessage) finished() bool {
	k := m.MarkerKind()
	return k == schema.MarkerEnd || k == schema.MarkerAbort
}

// Tail is the newest message of every partition of a topic.
type Tail struct {
	Topic string
	// Partitions[p] is partition p's newest message.
	Partitions []TailMessage
	// Fetches counts the fetch requests made, Records the records
	// decoded from their answers (a compressed batch is decoded whole).
	Fetches, Records int
}

// Unchanged reports whether every partition's newest message is a
// snapshot-end of export with generatedTime: the topic already holds a
// complete snapshot of that export. A topic with an empty partition is
// never unchanged.
func (t *Tail) Unchanged(export, generatedTime string) bool {
	if t == nil || len(t.Partitions) == 0 {
		return false
	}
	for _, m := range t.Partitions {
		if m.MarkerKind() != schema.MarkerEnd ||
			m.Headers[schema.HeaderExport] != export || m.Headers[schema.HeaderGeneratedTime] != generatedTime {
			return false
		}
	}
	return true
}

// Complete returns the export and generatedTime of the complete snapshot
// the topic ends with: ok when every partition's newest message is a
// snapshot-end and all of them name the same export and generatedTime.
func (t *Tail) Complete() (export, generatedTime string, ok bool) {
	if t == nil || len(t.Partitions) == 0 {
		return "", "", false
	}
	for i, m := range t.Partitions {
		if m.MarkerKind() != schema.MarkerEnd {
			return "", "", false
		}
		e, g := m.Headers[schema.HeaderExport], m.Headers[schema.HeaderGeneratedTime]
		if i == 0 {
			export, generatedTime = e, g
		} else if e != export || g != generatedTime {
			return "", "", false
		}
	}
	return export, generatedTime, true
}

// UnfinishedRun is a run whose message is the newest of some partition
// without being its snapshot-end or snapshot-abort there: a run still
// publishing, or one that died (SIGKILL, OOM) before its last marker.
type UnfinishedRun struct {
	RunID string
	// LastWrite is the newest Kafka timestamp among those messages.
	LastWrite time.Time
	// Partitions whose newest message belongs to the run.
	Partitions []int
}

// Unfinished lists the unfinished runs at the tail of the topic, the most
// recently written first. Messages without mde.run_id (not written by
// tvm2kafka) belong to no run.
func (t *Tail) Unfinished() []UnfinishedRun {
	if t == nil {
		return nil
	}
	byID := map[string]*UnfinishedRun{}
	var out []*UnfinishedRun
	for _, m := range t.Partitions {
		id := m.RunID()
		if m.Empty() || id == "" || m.finished() {
			continue
		}
		r := byID[id]
		if r == nil {
			r = &UnfinishedRun{RunID: id}
			byID[id] = r
			out = append(out, r)
		}
		if m.Time.After(r.LastWrite) {
			r.LastWrite = m.Time
		}
		r.Partitions = append(r.Partitions, m.Partition)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastWrite.After(out[j].LastWrite) })
	res := make([]UnfinishedRun, len(out))
	for i, r := range out {
		res[i] = *r
	}
	return res
}

// tailConcurrency bounds the fetches in flight of one Tail call.
const tailConcurrency = 8

// Tail reads the newest message of each of the topic's partitions
// (0..partitions-1): the end offsets with one ListOffsets request, then
// one fetch per non-empty partition at end−1. It never reads a partition
// from its beginning. Transient broker errors are retried with backoff
// within RetryMaxElapsed (30 s at most).
func (k *Kafka) Tail(ctx context.Context, topic string, partitions int) (*Tail, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("kafka: tail of topic %q: %d partitions", topic, partitions)
	}
	ends, err := k.endOffsets(ctx, topic, partitions)
	if err != nil {
		return nil, err
	}
	t := &Tail{Topic: topic, Partitions: make([]TailMessage, partitions)}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(tailConcurrency)
	for p := range partitions {
		t.Partitions[p] = TailMessage{Partition: p, Offset: -1}
		if ends[p] <= 0 {
			continue
		}
		g.Go(func() error {
			m, fetches, records, err := k.fetchAt(gctx, topic, p, ends[p]-1)
			mu.Lock()
			defer mu.Unlock()
			t.Fetches += fetches
			t.Records += records
			if err != nil {
				return err
			}
			t.Partitions[p] = m
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return t, nil
}

// tailBackOff bounds the retries of one tail request.
func (k *Kafka) tailBackOff() Backoff {
	return Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, MaxElapsed: min(max(k.cfg.RetryMaxElapsed, time.Second), 30*time.Second)}
}

// endOffsets returns the end offset (high watermark) of every partition.
func (k *Kafka) endOffsets(ctx context.Context, topic string, partitions int) ([]int64, error) {
	reqs := make([]kafka.OffsetRequest, partitions)
	for p := range reqs {
		reqs[p] = kafka.LastOffsetOf(p)
	}
	ends := make([]int64, partitions)
	op := func() error {
		resp, err := k.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return fmt.Errorf("kafka: end offsets of topic %q: %w", topic, err)
		}
		seen := 0
		for _, po := range resp.Topics[topic] {
			if po.Error != nil {
				err := fmt.Errorf("kafka: end offset of %s/%d: %w", topic, po.Partition, po.Error)
				return err
			}
			if po.Partition >= 0 && po.Partition < partitions {
				ends[po.Partition] = po.LastOffset
				seen++
			}
		}
		if seen != partitions {
			return fmt.Errorf("kafka: end offsets of topic %q: %d of %d partitions answered", topic, seen, partitions)
		}
		return nil
	}
	if err := Retry(ctx, k.tailBackOff(), op, nil); err != nil {
		return nil, err
	}
	return ends, nil
}

// fetchAt fetches the message at offset of topic/partition. A partition
// whose log no longer holds offset (retention removed it) is empty.
func (k *Kafka) fetchAt(ctx context.Context, topic string, partition int, offset int64) (m TailMessage, fetches, records int, err error) {
	m = TailMessage{Partition: partition, Offset: -1}
	maxBytes := max(k.cfg.BatchBytes, int64(k.cfg.MaxMessageBytes)) + 64<<10
	op := func() error {
		fetches++
		resp, err := k.client.Fetch(ctx, &kafka.FetchRequest{
			Topic:     topic,
			Partition: partition,
			Offset:    offset,
			MinBytes:  1,
			MaxBytes:  maxBytes,
			MaxWait:   time.Second,
		})
		if err != nil {
			return fmt.Errorf("kafka: fetching %s/%d at offset %d: %w", topic, partition, offset, err)
		}
		if resp.Error != nil {
			if errors.Is(resp.Error, kafka.OffsetOutOfRange) {
				return nil // retention removed it: nothing left
			}
			err := fmt.Errorf("kafka: fetching %s/%d at offset %d: %w", topic, partition, offset, resp.Error)
			return err
		}
		// A fetch answers whole batches: the one holding offset may start
		// before it. Read up to offset and stop.
		for {
			r, err := resp.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				return nil // the message is gone (compaction): the partition reads as empty
			}
			if err != nil {
				return fmt.Errorf("kafka: decoding %s/%d at offset %d: %w", topic, partition, offset, err)
			}
			records++
			if r.Offset < offset {
				continue
			}
			if m, err = tailMessage(partition, r); err != nil {
				return backoff.Permanent(fmt.Errorf("kafka: decoding %s/%d at offset %d: %w", topic, partition, r.Offset, err))
			}
			return nil
		}
	}
	err = Retry(ctx, k.tailBackOff(), op, nil)
	return m, fetches, records, err
}

// tailMessage copies what the decisions need out of a fetched record.
func tailMessage(partition int, r *kafka.Record) (TailMessage, error) {
	m := TailMessage{Partition: partition, Offset: r.Offset, Time: r.Time, Headers: make(map[string]string, len(r.Headers))}
	for _, h := range r.Headers {
		m.Headers[h.Key] = string(h.Value)
	}
	if r.Key != nil {
		key, err := protocol.ReadAll(r.Key)
		if err != nil {
			return m, err
		}
		m.Key = key
	}
	if string(m.Key) == schema.MarkerKey && r.Value != nil {
		v, err := protocol.ReadAll(r.Value)
		if err != nil {
			return m, err
		}
		var mk schema.Marker
		if json.Unmarshal(v, &mk) == nil && mk.Kind != "" {
			m.Marker = &mk
		}
	}
	return m, nil
}
