// Range reads: the partitions of a topic with their first and end
// offsets, and the messages between two offsets of one partition, fetched
// in bounded chunks. Fetch responses are read raw and their record batches
// decoded here, into reused buffers, with nothing allocated per message
// (fetch.go, batch.go). The consumer package and the table topic read
// through it.

package wire

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/semaphore"
)

// Partition is one partition of a topic and the offsets it holds.
type Partition struct {
	ID int
	// First is the log start offset; End the high watermark, the offset of
	// the next message to be written. The partition holds [First, End).
	First, End int64
}

// ErrNoTopic is returned by Partitions for a topic that does not exist.
var ErrNoTopic = errors.New("topic does not exist")

// Defaults of Scanner.
const (
	DefaultMaxBytes = 4 << 20
	DefaultMaxWait  = 500 * time.Millisecond
	// requestTimeout bounds one metadata, offsets or fetch round trip.
	requestTimeout = 30 * time.Second
	// retryElapsed bounds the retries of one request failing with a
	// transient error (leader change, broker restart).
	retryElapsed = time.Minute
)

// Partitions returns the partitions of topic with their offsets, sorted by
// ID. A topic that does not exist yields an error wrapping ErrNoTopic.
func partitions(ctx context.Context, c *kafka.Client, topic string) ([]Partition, error) {
	var n int
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		n, err = partitionCount(ctx, c, topic)
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return backoff.Permanent(fmt.Errorf("%q: %w", topic, ErrNoTopic))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: metadata of topic %q: %w", topic, err)
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*n)
	for p := range n {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	out := make([]Partition, n)
	err = retry(ctx, func(ctx context.Context) error {
		resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return err
		}
		got := 0
		for _, po := range resp.Topics[topic] {
			if po.Error != nil {
				return po.Error
			}
			if po.Partition < 0 || po.Partition >= n {
				continue
			}
			out[po.Partition] = Partition{ID: po.Partition, First: po.FirstOffset, End: po.LastOffset}
			got++
		}
		if got != n {
			return fmt.Errorf("offsets of %d of %d partitions", got, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: offsets of topic %q: %w", topic, err)
	}
	return out, nil
}

// Message is one message as Scan hands it over. Key, Value and what
// Headers returns are valid only during the callback; a nil Value is a
// null value (tombstone), a nil Key a message without key.
type Message struct {
	Partition int
	Offset    int64
	Time      time.Time
	Key       []byte
	Value     []byte

	headers  []byte // encoded, as in the record
	nHeaders int
	scan     *scanState
}

// Header returns the value of the last header named key.
func (m *Message) Header(key string) ([]byte, bool) {
	return findHeader(m.headers, m.nHeaders, key)
}

// Headers returns the message's headers. The slice and the header values
// are valid only during the callback; the header keys are ordinary
// strings.
func (m *Message) Headers() []Header {
	if m.nHeaders == 0 {
		return nil
	}
	return m.scan.headers(m.headers, m.nHeaders)
}

// Stats counts what scanners read; safe for concurrent use.
type Stats struct {
	// Fetches is the number of fetch requests; Messages the messages
	// decoded (including those of a batch before the offset asked for);
	// Bytes the size of their keys and values.
	Fetches, Messages, Bytes atomic.Int64
}

// Scanner reads messages of one topic. Scan may be called concurrently.
type Scanner struct {
	client *kafka.Client
	Topic  string
	// MaxBytes bounds one fetch response (default DefaultMaxBytes; the
	// broker still returns a first batch larger than that whole).
	MaxBytes int
	// MaxWait is how long the broker may wait for new messages when
	// following (default DefaultMaxWait).
	MaxWait time.Duration
	// Stats, when set, counts what is read.
	Stats *Stats
	// Gate, when set, bounds the fetches in flight of every Scan that
	// shares it: each fetch holds one unit.
	Gate *semaphore.Weighted
}

// ErrStop, returned by a Scan callback, ends the scan without error.
var ErrStop = errors.New("stop scanning")

// scanState is what one Scan reuses from fetch to fetch.
type scanState struct {
	buf  []byte // the fetch response
	dec  decoder
	hdrs []Header
	keys map[string]string // header keys, interned
}

// maxInterned bounds the distinct header keys a scan keeps as strings.
const maxInterned = 1024

func (st *scanState) headers(h []byte, n int) []Header {
	st.hdrs = st.hdrs[:0]
	for range n {
		k, rest, ok := nullableBytes(h)
		if !ok {
			break
		}
		v, rest, ok := nullableBytes(rest)
		if !ok {
			break
		}
		h = rest
		key, found := st.keys[string(k)]
		if !found {
			key = string(k)
			if st.keys == nil {
				st.keys = map[string]string{}
			}
			if len(st.keys) < maxInterned {
				st.keys[key] = key
			}
		}
		st.hdrs = append(st.hdrs, Header{Key: key, Value: v})
	}
	return st.hdrs
}

// Scan calls fn for every message of partition p with from ≤ offset < to,
// in offset order. With to < 0 it follows the partition until ctx is done
// (and returns ctx's error). Offsets that hold no message (compacted away)
// are skipped.
func (s *Scanner) Scan(ctx context.Context, p int, from, to int64, fn func(*Message) error) error {
	maxBytes := s.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	maxWait := s.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	st := &scanState{}
	var msg Message
	offset := from
	for to < 0 || offset < to {
		var resp *fetchResponse
		err := retry(ctx, func(ctx context.Context) error {
			if s.Gate != nil {
				if err := s.Gate.Acquire(ctx, 1); err != nil {
					return backoff.Permanent(err)
				}
				defer s.Gate.Release(1)
			}
			r, err := fetch(ctx, s.client, &fetchRequest{
				topic: s.Topic, partition: int32(p), offset: offset,
				maxBytes: int32(min(maxBytes, 1<<30)), maxWait: maxWait, buf: st.buf,
			})
			if err != nil {
				st.buf = nil // the connection may still be writing into it
				return err
			}
			st.buf, resp = r.buf, r
			if err = r.err; errors.Is(err, kafka.OffsetOutOfRange) {
				err = backoff.Permanent(err)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("kafka: fetching %s[%d] at offset %d: %w", s.Topic, p, offset, err)
		}
		if s.Stats != nil {
			s.Stats.Fetches.Add(1)
		}
		before := offset
		stop := false
		next, err := st.dec.each(resp.records, func(r *record) error {
			if s.Stats != nil {
				s.Stats.Messages.Add(1)
				s.Stats.Bytes.Add(int64(len(r.key) + len(r.value)))
			}
			if r.offset < offset {
				return nil // a batch can begin before the offset asked for
			}
			if to >= 0 && r.offset >= to {
				stop = true
				return ErrStop
			}
			msg = Message{Partition: p, Offset: r.offset, Time: time.UnixMilli(r.time), Key: r.key, Value: r.value,
				headers: r.headers, nHeaders: r.nHeaders, scan: st}
			offset = r.offset + 1
			return fn(&msg)
		})
		switch {
		case errors.Is(err, ErrStop):
			return nil
		case errors.Is(err, errCorrupt):
			return fmt.Errorf("kafka: decoding %s[%d] near offset %d: %w", s.Topic, p, offset, err)
		case err != nil:
			return err
		case stop:
			return nil
		}
		// Offsets after the last message handed over that hold none: the
		// rest of a batch compacted away, transaction markers.
		offset = max(offset, next)
		if offset == before {
			// Nothing at or after offset in this response.
			switch {
			case to < 0:
				if ctx.Err() != nil {
					return ctx.Err()
				}
			case resp.highWatermark <= offset:
				return nil // the partition ends before to
			default:
				// Offsets without messages (a compacted topic's gap, an
				// empty batch): step over them.
				offset++
			}
		}
	}
	return nil
}

// retry runs call with a bounded timeout per attempt, retrying transient
// Kafka and network errors with backoff for up to retryElapsed.
func retry(ctx context.Context, call func(context.Context) error) error {
	return Retry(ctx, Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, MaxElapsed: retryElapsed}, func() error {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		err := call(cctx)
		if err != nil && ctx.Err() != nil {
			return backoff.Permanent(err)
		}
		return err
	}, nil)
}

// Partitions returns the partitions of topic with their first and end
// offsets; a topic that does not exist is ErrNoTopic.
func (k *Kafka) Partitions(ctx context.Context, topic string) ([]Partition, error) {
	return partitions(ctx, k.client, topic)
}

// Scanner returns a Scanner of topic on k's connections, with fetches of
// at most maxBytes (0: DefaultMaxBytes), counting into st (optional).
func (k *Kafka) Scanner(topic string, maxBytes int, st *Stats) *Scanner {
	return &Scanner{client: k.client, Topic: topic, MaxBytes: maxBytes, Stats: st}
}
