// Package kread reads Kafka partitions with kafka-go's Client: the
// partitions of a topic with their first and end offsets, and the messages
// between two offsets of one partition, fetched in bounded chunks and
// decoded into reused buffers. The consumer package and the table topic
// share it.
package kread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
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
func Partitions(ctx context.Context, c *kafka.Client, topic string) ([]Partition, error) {
	var n int
	err := retry(ctx, func(ctx context.Context) error {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return err
		}
		for _, t := range md.Topics {
			if t.Name != topic {
				continue
			}
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return backoff.Permanent(fmt.Errorf("%q: %w", topic, ErrNoTopic))
			}
			if t.Error != nil {
				return t.Error
			}
			n = len(t.Partitions)
			return nil
		}
		return backoff.Permanent(fmt.Errorf("%q: %w", topic, ErrNoTopic))
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

// Message is one message as Scan hands it over. Key, Value and Headers
// are valid only during the callback; a nil Value is a null value
// (tombstone), a nil Key a message without key.
type Message struct {
	Partition int
	Offset    int64
	Time      time.Time
	Key       []byte
	Value     []byte
	Headers   []kafka.Header
	// RawValue is the value as kafka-go decoded it, instead of Value,
	// when the Scanner's RawValues is set: nil for a null value; its
	// WriteTo hands the bytes over without copying them. Valid only
	// during the callback.
	RawValue kafka.Bytes
}

// Header returns the value of the last header named key.
func (m *Message) Header(key string) ([]byte, bool) {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return m.Headers[i].Value, true
		}
	}
	return nil, false
}

// Stats counts what scanners read; safe for concurrent use.
type Stats struct {
	// Fetches is the number of fetch requests; Messages the messages
	// decoded (including those of a batch before the offset asked for);
	// Bytes the size of their keys and values.
	Fetches, Messages, Bytes atomic.Int64
}

// Scanner reads messages of one topic.
type Scanner struct {
	Client *kafka.Client
	Topic  string
	// MaxBytes bounds one fetch response (default DefaultMaxBytes; the
	// broker still returns a first batch larger than that whole).
	MaxBytes int
	// MaxWait is how long the broker may wait for new messages when
	// following (default DefaultMaxWait).
	MaxWait time.Duration
	// Stats, when set, counts what is read.
	Stats *Stats
	// RawValues hands values over as Message.RawValue instead of copying
	// them into Message.Value.
	RawValues bool
}

// ErrStop, returned by a Scan callback, ends the scan without error.
var ErrStop = errors.New("stop scanning")

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
	var key, value []byte
	var msg Message
	offset := from
	for to < 0 || offset < to {
		var resp *kafka.FetchResponse
		err := retry(ctx, func(ctx context.Context) error {
			var err error
			resp, err = s.Client.Fetch(ctx, &kafka.FetchRequest{
				Topic: s.Topic, Partition: p, Offset: offset,
				MinBytes: 1, MaxBytes: int64(maxBytes), MaxWait: maxWait,
			})
			if err == nil && resp.Error != nil {
				err = resp.Error
				if errors.Is(err, kafka.OffsetOutOfRange) {
					err = backoff.Permanent(err)
				}
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
		for !stop {
			r, err := resp.Records.ReadRecord()
			if err == io.EOF {
				break
			}
			if err != nil {
				closeRecords(resp.Records)
				return fmt.Errorf("kafka: decoding %s[%d] near offset %d: %w", s.Topic, p, offset, err)
			}
			if s.Stats != nil {
				n := 0
				if r.Key != nil {
					n += r.Key.Len()
				}
				if r.Value != nil {
					n += r.Value.Len()
				}
				s.Stats.Messages.Add(1)
				s.Stats.Bytes.Add(int64(n))
			}
			if r.Offset < offset || (to >= 0 && r.Offset >= to) {
				// Before the offset asked for (a batch can begin earlier),
				// or past the end.
				closeBytes(r.Key)
				closeBytes(r.Value)
				if r.Offset < offset {
					continue
				}
				stop = true
				break
			}
			key, err = readBytes(r.Key, key)
			if err == nil && !s.RawValues {
				value, err = readBytes(r.Value, value)
			}
			if err != nil {
				closeBytes(r.Key)
				closeBytes(r.Value)
				closeRecords(resp.Records)
				return fmt.Errorf("kafka: decoding %s[%d] offset %d: %w", s.Topic, p, r.Offset, err)
			}
			msg = Message{Partition: p, Offset: r.Offset, Time: r.Time, Headers: r.Headers}
			if r.Key != nil {
				msg.Key = key
			}
			switch {
			case s.RawValues:
				msg.RawValue = r.Value
			case r.Value != nil:
				msg.Value = value
			}
			offset = r.Offset + 1
			err = fn(&msg)
			// Hand the response's pages back to kafka-go's pool at once.
			closeBytes(r.Key)
			closeBytes(r.Value)
			if err != nil {
				closeRecords(resp.Records)
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
		}
		closeRecords(resp.Records)
		if stop {
			return nil
		}
		if offset == before {
			// Nothing at or after offset in this response.
			switch {
			case to < 0:
				if ctx.Err() != nil {
					return ctx.Err()
				}
			case resp.HighWatermark <= offset:
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

// closeRecords releases the buffers of a fetch response's records.
func closeRecords(r kafka.RecordReader) {
	if c, ok := r.(io.Closer); ok {
		_ = c.Close()
	}
}

func closeBytes(b kafka.Bytes) {
	if b != nil {
		_ = b.Close()
	}
}

// readBytes reads b into buf (reused) and returns it; nil for a nil b.
func readBytes(b kafka.Bytes, buf []byte) ([]byte, error) {
	if b == nil {
		return buf[:0], nil
	}
	n := b.Len()
	if cap(buf) < n {
		buf = make([]byte, n, max(n, 2*cap(buf)))
	}
	buf = buf[:n]
	_, err := io.ReadFull(b, buf)
	return buf, err
}

// retry runs call with a bounded timeout per attempt, retrying transient
// Kafka and network errors with backoff for up to retryElapsed.
func retry(ctx context.Context, call func(context.Context) error) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 2 * time.Second
	bo.MaxElapsedTime = retryElapsed
	return backoff.Retry(func() error {
		cctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		err := call(cctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		var ke kafka.Error
		if errors.As(err, &ke) && !ke.Temporary() {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(bo, ctx))
}
