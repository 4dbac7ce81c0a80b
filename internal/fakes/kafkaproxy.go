package fakes

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ProduceKey is the API key of Kafka's Produce request.
const ProduceKey int16 = 0

// Kafka error codes a KafkaFault may answer instead of the broker's.
const (
	ErrNotLeaderOrFollower int16 = 6
	ErrRequestTimedOut     int16 = 7
)

// KafkaAction is what an armed KafkaFault does to the request it matched.
type KafkaAction int

const (
	// CutAfterAnswer forwards the request to the broker, waits for the
	// broker's answer and then closes the client's connection (and the
	// broker's) instead of relaying it: the request took effect, its
	// answer is lost.
	CutAfterAnswer KafkaAction = iota + 1
	// AnswerError forwards a Produce request, waits for the broker's
	// answer and relays it with every partition's error code replaced by
	// KafkaFault.ErrorCode (and base offset -1): the batch was appended,
	// the client is told it failed.
	AnswerError
)

func (a KafkaAction) String() string {
	switch a {
	case CutAfterAnswer:
		return "cut after answer"
	case AnswerError:
		return "answer error"
	}
	return fmt.Sprintf("KafkaAction(%d)", int(a))
}

// KafkaFault selects one request and says what to do to it.
type KafkaFault struct {
	// APIKey selects the kind of request counted (ProduceKey for Produce).
	APIKey int16
	// Match, when set, further selects requests; it sees the parsed
	// header and the raw body (KafkaRequest.Produce decodes a Produce
	// request's record batches). It runs on the proxy's forwarding path
	// under its lock: keep it quick and do not call the proxy from it.
	Match func(*KafkaRequest) bool
	// Nth: the fault acts on the Nth request that matches after it was
	// armed (1 = the first; 0 counts as 1).
	Nth int
	// Action is what happens to that request.
	Action KafkaAction
	// ErrorCode is the error AnswerError answers (ErrRequestTimedOut, ...).
	ErrorCode int16
}

// KafkaRequest is one request frame seen by the proxy.
type KafkaRequest struct {
	APIKey        int16
	Version       int16
	CorrelationID int32
	ClientID      string
	// Upstream is the broker address the request is forwarded to.
	Upstream string
	// Body is the request after its header. It is only valid during
	// KafkaFault.Match; ArmedKafkaFault.Request keeps a copy.
	Body []byte

	// topicName resolves the topic IDs of Produce v13+ (learnt from the
	// Metadata answers the proxy relayed).
	topicName func([16]byte) string
}

// ProducedBatch is one record batch of a Produce request, decoded.
type ProducedBatch struct {
	// Topic is the topic's name; for a request that names topics by ID
	// (Produce v13+) it is known only when the client's Metadata answer
	// passed through the proxy, else empty.
	Topic         string
	Partition     int32
	ProducerID    int64
	ProducerEpoch int16
	// FirstSequence is the idempotent producer's sequence number of the
	// batch's first record (-1 without an idempotent producer).
	FirstSequence int32
	Records       []ProducedRecord
}

// ProducedRecord is one record of a ProducedBatch.
type ProducedRecord struct {
	Key, Value []byte
	// Headers maps header key to value; a repeated key keeps the last.
	Headers map[string]string
}

// Produce decodes a Produce request's record batches (any compression).
func (r *KafkaRequest) Produce() ([]ProducedBatch, error) {
	if r.APIKey != ProduceKey {
		return nil, fmt.Errorf("fakes: request key %d is not Produce", r.APIKey)
	}
	req := kmsg.NewProduceRequest()
	req.Version = r.Version
	if err := req.ReadFrom(r.Body); err != nil {
		return nil, fmt.Errorf("fakes: decoding Produce v%d: %w", r.Version, err)
	}
	var out []ProducedBatch
	for _, t := range req.Topics {
		topic := t.Topic
		if topic == "" && r.topicName != nil {
			topic = r.topicName(t.TopicID)
		}
		for _, p := range t.Partitions {
			batches, err := decodeBatches(topic, p.Partition, p.Records)
			if err != nil {
				return nil, err
			}
			out = append(out, batches...)
		}
	}
	return out, nil
}

// HasRecord reports whether any record of a Produce request satisfies f.
// A request that cannot be decoded has none.
func (r *KafkaRequest) HasRecord(f func(topic string, rec ProducedRecord) bool) bool {
	batches, err := r.Produce()
	if err != nil {
		return false
	}
	for _, b := range batches {
		for _, rec := range b.Records {
			if f(b.Topic, rec) {
				return true
			}
		}
	}
	return false
}

var decompressor = kgo.DefaultDecompressor()

func decodeBatches(topic string, partition int32, b []byte) ([]ProducedBatch, error) {
	var out []ProducedBatch
	for len(b) > 0 {
		if len(b) < 12 {
			return nil, fmt.Errorf("fakes: %s[%d]: truncated record batch header", topic, partition)
		}
		end := 12 + int(binary.BigEndian.Uint32(b[8:12]))
		if end > len(b) || end < 12 {
			return nil, fmt.Errorf("fakes: %s[%d]: record batch longer than the request", topic, partition)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b[:end]); err != nil {
			return nil, fmt.Errorf("fakes: %s[%d]: record batch: %w", topic, partition, err)
		}
		b = b[end:]
		if rb.Magic != 2 {
			return nil, fmt.Errorf("fakes: %s[%d]: record batch magic %d (only v2 is decoded)", topic, partition, rb.Magic)
		}
		raw := rb.Records
		if codec := kgo.CompressionCodecType(rb.Attributes & 7); codec != kgo.CodecNone {
			var err error
			if raw, err = decompressor.Decompress(raw, codec); err != nil {
				return nil, fmt.Errorf("fakes: %s[%d]: decompressing a batch (codec %d): %w", topic, partition, codec, err)
			}
		}
		batch := ProducedBatch{Topic: topic, Partition: partition, ProducerID: rb.ProducerID,
			ProducerEpoch: rb.ProducerEpoch, FirstSequence: rb.FirstSequence}
		for i := int32(0); i < rb.NumRecords; i++ {
			length, n := binary.Varint(raw)
			if n <= 0 || length < 0 || n+int(length) > len(raw) {
				return nil, fmt.Errorf("fakes: %s[%d]: record %d of %d is truncated", topic, partition, i, rb.NumRecords)
			}
			var rec kmsg.Record
			if err := rec.ReadFrom(raw[:n+int(length)]); err != nil {
				return nil, fmt.Errorf("fakes: %s[%d]: record %d: %w", topic, partition, i, err)
			}
			raw = raw[n+int(length):]
			pr := ProducedRecord{Key: rec.Key, Value: rec.Value, Headers: make(map[string]string, len(rec.Headers))}
			for _, h := range rec.Headers {
				pr.Headers[h.Key] = string(h.Value)
			}
			batch.Records = append(batch.Records, pr)
		}
		out = append(out, batch)
	}
	return out, nil
}

// ProduceAnswer is one partition of a Produce response.
type ProduceAnswer struct {
	Topic      string
	Partition  int32
	ErrorCode  int16
	BaseOffset int64
}

// ArmedKafkaFault is a KafkaFault waiting for, or done with, its request.
type ArmedKafkaFault struct {
	fault KafkaFault
	seen  int
	fired chan struct{}

	// set under KafkaProxy.mu
	request *KafkaRequest
	answer  []ProduceAnswer
	err     error
}

// Fired is closed once the fault acted: the broker's answer to the
// matched request was swallowed (CutAfterAnswer) or rewritten.
func (a *ArmedKafkaFault) Fired() <-chan struct{} { return a.fired }

// KafkaProxy is a TCP proxy in front of Kafka brokers that reads the
// protocol's framing (a 4-byte size, then API key, version and correlation
// id) in both directions and injects faults into chosen requests. Each
// listener forwards to one broker; for a client to reach a broker only
// through the proxy, the broker's advertised listener must be the proxy's
// address (scripts/kafka-cluster.sh has such listeners).
type KafkaProxy struct {
	listeners []proxyListener
	wg        sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	conns    map[net.Conn]struct{}
	faults   []*ArmedKafkaFault
	counts   map[int16]int
	accepted int

	namesMu sync.Mutex
	names   map[[16]byte]string // topic ID → name, from Metadata answers
}

// NewKafkaProxy listens on every key of routes (host:port; port 0 picks
// one) and forwards each accepted connection to the route's value, a
// broker address. It fails when an address cannot be bound.
func NewKafkaProxy(routes map[string]string) (*KafkaProxy, error) {
	p := &KafkaProxy{conns: map[net.Conn]struct{}{}, counts: map[int16]int{}, names: map[[16]byte]string{}}
	for listen, upstream := range routes {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("fakes: kafka proxy listen %s: %w", listen, err)
		}
		p.listeners = append(p.listeners, proxyListener{ln, upstream})
	}
	for _, pl := range p.listeners {
		p.wg.Add(1)
		go p.accept(pl.Listener, pl.upstream)
	}
	return p, nil
}

// Addr returns the address the proxy listens on for upstream, or "".
func (p *KafkaProxy) Addr(upstream string) string {
	for _, pl := range p.listeners {
		if pl.upstream == upstream {
			return pl.Addr().String()
		}
	}
	return ""
}

// Close stops listening, closes every connection and waits for the
// forwarding goroutines.
func (p *KafkaProxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	for _, ln := range p.listeners {
		ln.Close()
	}
	p.wg.Wait()
}

// Arm queues a fault; it acts on the Nth matching request from now on.
func (p *KafkaProxy) Arm(f KafkaFault) *ArmedKafkaFault {
	if f.Nth < 1 {
		f.Nth = 1
	}
	a := &ArmedKafkaFault{fault: f, fired: make(chan struct{})}
	p.mu.Lock()
	p.faults = append(p.faults, a)
	p.mu.Unlock()
	return a
}

// Request returns a copy of the request the fault matched (nil before).
func (a *ArmedKafkaFault) Request(p *KafkaProxy) *KafkaRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return a.request
}

// Answer returns what the broker answered to the matched Produce request,
// per partition, before the fault swallowed or rewrote it, and an error
// when that answer could not be decoded.
func (a *ArmedKafkaFault) Answer(p *KafkaProxy) ([]ProduceAnswer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProduceAnswer(nil), a.answer...), a.err
}

// Requests returns how many requests of apiKey the proxy forwarded.
func (p *KafkaProxy) Requests(apiKey int16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[apiKey]
}

// Connections returns how many client connections the proxy accepted.
func (p *KafkaProxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

type proxyListener struct {
	net.Listener
	upstream string
}

func (p *KafkaProxy) accept(ln net.Listener, upstream string) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.accepted++
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c, upstream)
	}
}

// pending is what the response path must do with one request's answer.
type pending struct {
	apiKey, version int16
	fault           *ArmedKafkaFault
}

func (p *KafkaProxy) serve(client net.Conn, upstreamAddr string) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, client)
		p.mu.Unlock()
		client.Close()
	}()
	upstream, err := net.DialTimeout("tcp", upstreamAddr, 10*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		upstream.Close()
		return
	}
	p.conns[upstream] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, upstream)
		p.mu.Unlock()
		upstream.Close()
	}()

	var (
		mu      sync.Mutex
		waiting = map[int32]pending{}
	)
	done := make(chan struct{})
	go func() { // broker → client
		defer close(done)
		defer client.Close()
		defer upstream.Close()
		for {
			frame, err := readFrame(upstream)
			if err != nil {
				return
			}
			if len(frame) < 4 {
				return
			}
			corr := int32(binary.BigEndian.Uint32(frame[:4]))
			mu.Lock()
			pend, ok := waiting[corr]
			delete(waiting, corr)
			mu.Unlock()
			if ok && pend.apiKey == metadataKey {
				p.learnTopicIDs(pend.version, frame)
			}
			if ok && pend.fault != nil {
				switch pend.fault.fault.Action {
				case CutAfterAnswer:
					p.record(pend, frame, nil)
					return // closes both connections; the answer is lost
				case AnswerError:
					frame = p.rewrite(pend, frame)
				}
			}
			if err := writeFrame(client, frame); err != nil {
				return
			}
		}
	}()

	// client → broker
	for {
		frame, err := readFrame(client)
		if err != nil {
			break
		}
		req, err := parseHeader(frame)
		if err != nil {
			break
		}
		req.Upstream = upstreamAddr
		req.topicName = p.topicName
		pend := pending{apiKey: req.APIKey, version: req.Version, fault: p.match(req)}
		if !(req.APIKey == ProduceKey && producesWithoutAnswer(req)) {
			mu.Lock()
			waiting[req.CorrelationID] = pend
			mu.Unlock()
		}
		if err := writeFrame(upstream, frame); err != nil {
			break
		}
	}
	upstream.Close()
	<-done
}

// match counts req against every armed fault and returns the fault that
// acts on it, if any.
func (p *KafkaProxy) match(req *KafkaRequest) *ArmedKafkaFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[req.APIKey]++
	for _, a := range p.faults {
		if a.request != nil || a.fault.APIKey != req.APIKey {
			continue
		}
		if a.fault.Match != nil && !a.fault.Match(req) {
			continue
		}
		a.seen++
		if a.seen == a.fault.Nth {
			cp := *req
			cp.Body = append([]byte(nil), req.Body...)
			a.request = &cp
			return a
		}
	}
	return nil
}

const metadataKey int16 = 3

// learnTopicIDs remembers the topic IDs of a Metadata answer.
func (p *KafkaProxy) learnTopicIDs(version int16, frame []byte) {
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = version
	off := 4
	if resp.IsFlexible() {
		n, err := skipTags(frame[off:])
		if err != nil {
			return
		}
		off += n
	}
	if resp.ReadFrom(frame[off:]) != nil {
		return
	}
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	for _, t := range resp.Topics {
		if t.Topic != nil && t.TopicID != [16]byte{} {
			p.names[t.TopicID] = *t.Topic
		}
	}
}

func (p *KafkaProxy) topicName(id [16]byte) string {
	p.namesMu.Lock()
	defer p.namesMu.Unlock()
	return p.names[id]
}

// record stores the broker's answer to a faulted request and fires the fault.
func (p *KafkaProxy) record(pend pending, frame []byte, rewritten error) {
	answer, err := decodeProduceAnswer(pend, frame)
	if err == nil {
		err = rewritten
	}
	p.mu.Lock()
	pend.fault.answer, pend.fault.err = answer, err
	p.mu.Unlock()
	close(pend.fault.fired)
}

// rewrite returns the frame of a Produce response with every partition's
// error replaced by the fault's error code.
func (p *KafkaProxy) rewrite(pend pending, frame []byte) []byte {
	resp, hdrLen, err := parseProduceResponse(pend, frame)
	if err != nil {
		p.record(pend, frame, err)
		return frame
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			part := &resp.Topics[i].Partitions[j]
			part.ErrorCode = pend.fault.fault.ErrorCode
			part.BaseOffset = -1
		}
	}
	out := append([]byte(nil), frame[:hdrLen]...)
	out = resp.AppendTo(out)
	p.record(pend, frame, nil)
	return out
}

func parseProduceResponse(pend pending, frame []byte) (*kmsg.ProduceResponse, int, error) {
	if pend.apiKey != ProduceKey {
		return nil, 0, fmt.Errorf("fakes: answer of key %d is not a Produce response", pend.apiKey)
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = pend.version
	hdrLen := 4 // correlation id
	if resp.IsFlexible() {
		n, err := skipTags(frame[hdrLen:])
		if err != nil {
			return nil, 0, err
		}
		hdrLen += n
	}
	if err := resp.ReadFrom(frame[hdrLen:]); err != nil {
		return nil, 0, fmt.Errorf("fakes: decoding Produce response v%d: %w", pend.version, err)
	}
	return resp, hdrLen, nil
}

func decodeProduceAnswer(pend pending, frame []byte) ([]ProduceAnswer, error) {
	resp, _, err := parseProduceResponse(pend, frame)
	if err != nil {
		return nil, err
	}
	var out []ProduceAnswer
	for _, t := range resp.Topics {
		for _, part := range t.Partitions {
			out = append(out, ProduceAnswer{Topic: t.Topic, Partition: part.Partition, ErrorCode: part.ErrorCode, BaseOffset: part.BaseOffset})
		}
	}
	return out, nil
}

// producesWithoutAnswer reports a Produce request with acks=0, which the
// broker never answers.
func producesWithoutAnswer(req *KafkaRequest) bool {
	pr := kmsg.NewProduceRequest()
	pr.Version = req.Version
	// acks follows the (nullable) transactional id from v3 on.
	b := req.Body
	if req.Version >= 3 {
		if pr.IsFlexible() {
			l, n := binary.Uvarint(b)
			if n <= 0 {
				return false
			}
			if l > 0 {
				n += int(l - 1)
			}
			if n > len(b) {
				return false
			}
			b = b[n:]
		} else {
			if len(b) < 2 {
				return false
			}
			l := int16(binary.BigEndian.Uint16(b))
			b = b[2:]
			if l > 0 {
				if int(l) > len(b) {
					return false
				}
				b = b[l:]
			}
		}
	}
	return len(b) >= 2 && binary.BigEndian.Uint16(b) == 0
}

// parseHeader reads a request frame's header (v1, or v2 with tagged
// fields for flexible versions).
func parseHeader(frame []byte) (*KafkaRequest, error) {
	if len(frame) < 10 {
		return nil, errors.New("fakes: request shorter than its header")
	}
	req := &KafkaRequest{
		APIKey:        int16(binary.BigEndian.Uint16(frame[0:2])),
		Version:       int16(binary.BigEndian.Uint16(frame[2:4])),
		CorrelationID: int32(binary.BigEndian.Uint32(frame[4:8])),
	}
	rest := frame[10:]
	if l := int16(binary.BigEndian.Uint16(frame[8:10])); l > 0 {
		if int(l) > len(rest) {
			return nil, errors.New("fakes: client id longer than the request")
		}
		req.ClientID, rest = string(rest[:l]), rest[l:]
	}
	if kr := kmsg.RequestForKey(req.APIKey); kr != nil {
		kr.SetVersion(req.Version)
		if kr.IsFlexible() {
			n, err := skipTags(rest)
			if err != nil {
				return nil, err
			}
			rest = rest[n:]
		}
	}
	req.Body = rest
	return req, nil
}

// skipTags returns the length of a tagged-field section.
func skipTags(b []byte) (int, error) {
	num, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, errors.New("fakes: bad tagged fields")
	}
	off := n
	for i := uint64(0); i < num; i++ {
		_, n = binary.Uvarint(b[off:])
		if n <= 0 {
			return 0, errors.New("fakes: bad tag")
		}
		off += n
		size, n := binary.Uvarint(b[off:])
		if n <= 0 || off+n+int(size) > len(b) {
			return 0, errors.New("fakes: bad tag size")
		}
		off += n + int(size)
	}
	return off, nil
}

// maxFrame bounds one frame (requests are at most a few MB).
const maxFrame = 256 << 20

func readFrame(r io.Reader) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 0 || n > maxFrame {
		return nil, fmt.Errorf("fakes: frame size %d", n)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, err
	}
	return frame, nil
}

func writeFrame(w io.Writer, frame []byte) error {
	buf := make([]byte, 4+len(frame))
	binary.BigEndian.PutUint32(buf, uint32(len(frame)))
	copy(buf[4:], frame)
	_, err := w.Write(buf)
	return err
}
