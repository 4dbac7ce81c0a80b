package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A fetch goes through kafka-go's Transport — its connections, TLS, SASL
// (OAUTHBEARER included), metadata and leader routing — but its answer is
// not decoded by kafka-go: fetchRequest is a protocol.RawExchanger, which
// kafka-go lets write its request and read its response on the connection
// itself. The response is read whole into one reused buffer and its
// record batches are decoded by this package (batch.go) without
// allocating per record. kafka-go's own fetch decoding builds a record
// object, header strings and page references for every record: reading
// back a table of 1,000,000 devices cost about 1.6 s of CPU and 800 MB of
// garbage there, where this costs the decompression and a pass over the
// bytes.

// minFetchVersion is the first Fetch version whose answers hold record
// batches (message format v2) and carry the isolation level; every broker
// since Kafka 0.11 serves it, Kafka 4 serves nothing older.
const (
	minFetchVersion = 4
	// maxFetchVersion is the last version that names topics (v13 names
	// them by topic id).
	maxFetchVersion = 12
)

// fetchRequest is one Fetch of one partition.
type fetchRequest struct {
	topic     string
	partition int32
	offset    int64
	maxBytes  int32
	maxWait   time.Duration
	clientID  string
	// buf is where the response is read (reused by the caller; handed
	// back in fetchResponse.buf).
	buf     []byte
	version int16
}

// fetchResponse is the answer for the one partition fetched.
type fetchResponse struct {
	err           error // the partition's (or the request's) error code
	highWatermark int64
	// records is the partition's record batches (the last one may be
	// partial), inside buf.
	records []byte
	buf     []byte
}

// ApiKey implements protocol.Message.
func (r *fetchRequest) ApiKey() protocol.ApiKey { return protocol.Fetch }

// ApiKey implements protocol.Message.
func (r *fetchResponse) ApiKey() protocol.ApiKey { return protocol.Fetch }

// Broker implements protocol.BrokerMessage: the partition's leader.
func (r *fetchRequest) Broker(c protocol.Cluster) (protocol.Broker, error) {
	t, ok := c.Topics[r.topic]
	if !ok {
		return protocol.Broker{}, kafka.UnknownTopicOrPartition
	}
	p, ok := t.Partitions[r.partition]
	if !ok {
		return protocol.Broker{}, kafka.UnknownTopicOrPartition
	}
	b, ok := c.Brokers[p.Leader]
	if !ok {
		return protocol.Broker{}, kafka.LeaderNotAvailable
	}
	return b, nil
}

// Required implements protocol.RawExchanger: the exchange is always raw;
// versions are the versions negotiated on the connection.
func (r *fetchRequest) Required(versions map[protocol.ApiKey]int16) bool {
	r.version = min(versions[protocol.Fetch], maxFetchVersion)
	return true
}

// RawExchange implements protocol.RawExchanger: it writes the request and
// reads the response into r.buf. kafka-go has set the connection's
// deadline from the request's context.
func (r *fetchRequest) RawExchange(rw io.ReadWriter) (protocol.Message, error) {
	if r.version < minFetchVersion {
		return nil, fmt.Errorf("the broker serves Fetch up to version %d; reading needs version %d (Kafka 0.11 or later)", r.version, minFetchVersion)
	}
	req := kmsg.NewPtrFetchRequest()
	req.Version = r.version
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(r.maxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = r.maxBytes
	req.IsolationLevel = 0 // read uncommitted, as kafka-go's Fetch
	req.SessionID = 0
	req.SessionEpoch = -1 // no fetch session
	t := kmsg.NewFetchRequestTopic()
	t.Topic = r.topic
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition = r.partition
	p.CurrentLeaderEpoch = -1
	p.FetchOffset = r.offset
	p.LastFetchedEpoch = -1
	p.LogStartOffset = -1
	p.PartitionMaxBytes = r.maxBytes
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)

	const correlationID = 1 // one request at a time on this connection
	out := kmsg.NewRequestFormatter(kmsg.FormatterClientID(r.clientID)).AppendRequest(r.buf[:0], req, correlationID)
	if _, err := rw.Write(out); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(rw, size[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(size[:])))
	if n < 4 {
		return nil, fmt.Errorf("fetch response of %d bytes", n)
	}
	buf := r.buf
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(rw, buf); err != nil {
		return nil, err
	}
	if id := int32(binary.BigEndian.Uint32(buf)); id != correlationID {
		return nil, fmt.Errorf("fetch response with correlation id %d, want %d", id, correlationID)
	}
	body := buf[4:]
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = r.version
	if resp.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decoding the fetch response: %w", err)
	}
	out2 := &fetchResponse{buf: buf}
	if resp.ErrorCode != 0 {
		out2.err = kafka.Error(resp.ErrorCode)
		return out2, nil
	}
	for _, t := range resp.Topics {
		if t.Topic != r.topic {
			continue
		}
		for _, p := range t.Partitions {
			if p.Partition != r.partition {
				continue
			}
			if p.ErrorCode != 0 {
				out2.err = kafka.Error(p.ErrorCode)
			}
			out2.highWatermark, out2.records = p.HighWatermark, p.RecordBatches
			return out2, nil
		}
	}
	return nil, fmt.Errorf("the fetch response holds no data for %s[%d]", r.topic, r.partition)
}

// skipTags skips the tagged fields of a flexible response header.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tagged fields in the fetch response header")
	}
	b = b[k:]
	for range n {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tagged fields in the fetch response header")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return nil, errors.New("bad tagged fields in the fetch response header")
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// fetch sends one Fetch through c's transport. buf is reused for the
// response; it is returned in the response, never after an error (the
// connection may still be writing into it then).
func fetch(ctx context.Context, c *kafka.Client, req *fetchRequest) (*fetchResponse, error) {
	t := c.Transport
	if t == nil {
		t = kafka.DefaultTransport
	}
	if req.clientID == "" {
		req.clientID = kafka.DefaultClientID
		if kt, ok := t.(*kafka.Transport); ok && kt.ClientID != "" {
			req.clientID = kt.ClientID
		}
	}
	if c.Addr == nil {
		return nil, errors.New("no address was given for the kafka cluster on the client")
	}
	m, err := t.RoundTrip(ctx, c.Addr, req)
	if err != nil {
		return nil, err
	}
	resp, ok := m.(*fetchResponse)
	if !ok {
		return nil, fmt.Errorf("unexpected fetch answer %T", m)
	}
	return resp, nil
}
