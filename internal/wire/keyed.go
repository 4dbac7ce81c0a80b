package wire

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// newTransport builds the kafka-go Transport of cfg (TLS, SASL including
// OAUTHBEARER, timeouts) without any network call: the one of NewKafka.
func newTransport(cfg Config) (*kafka.Transport, error) {
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.saslMechanism()
	if err != nil {
		return nil, err
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	return &kafka.Transport{
		Dial:        cfg.dialer(),
		DialTimeout: cfg.DialTimeout,
		IdleTimeout: 5 * time.Minute,
		// The transport routes every produce request by its cached
		// metadata; a short TTL bounds how long requests go to a former
		// leader after a leader change.
		MetadataTTL: 3 * time.Second,
		ClientID:    "tvm2kafka",
		TLS:         tlsCfg,
		SASL:        mech,
	}, nil
}

// KeyedMessage is one message of a KeyedWriter.
type KeyedMessage struct {
	Key []byte
	// Value nil is a tombstone.
	Value   []byte
	Headers []Header
	// A message goes to partition murmur2(Key) mod the topic's partitions
	// (the Java client's default partitioner), or with Pinned to
	// Partition (a tombstone for a record found in a partition its key
	// does not hash to, after the topic's partition count was raised).
	Pinned    bool
	Partition int
}

// KeyedWriter writes messages to a topic as an idempotent producer of its
// own (exactly once, in order per partition): Write returns when every
// message is acknowledged. The producer id is obtained on the first write;
// Close ends it.
type KeyedWriter struct {
	k          *Kafka
	topic      string
	partitions int

	mu     sync.Mutex
	w      *Writer
	ctx    context.Context
	cancel context.CancelFunc
}

// NewKeyedWriter returns a KeyedWriter for topic, which has partitions
// partitions. It makes no network call.
func (k *Kafka) NewKeyedWriter(topic string, partitions int) *KeyedWriter {
	ctx, cancel := context.WithCancel(context.Background())
	return &KeyedWriter{k: k, topic: topic, partitions: partitions, ctx: ctx, cancel: cancel}
}

// Write writes msgs and waits until every one is acknowledged. Failures
// are final: the writer already retried them within the Kafka's
// RetryMaxElapsed, and a failed writer fails every later call at once.
func (kw *KeyedWriter) Write(ctx context.Context, msgs []KeyedMessage) error {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	if kw.w == nil {
		wc := kw.k.WriterDefaults()
		wc.Topic, wc.Partitions, wc.Log = kw.topic, kw.partitions, kw.k.log
		wc.RetryInitial, wc.RetryMax = 200*time.Millisecond, kw.k.cfg.RetryMaxElapsed
		w, err := NewWriter(kw.ctx, kw.k, wc)
		if err != nil {
			return err
		}
		kw.w = w
	}
	for i := range msgs {
		m := &msgs[i]
		p := schema.Partition(m.Key, kw.partitions)
		if m.Pinned && m.Partition >= 0 && m.Partition < kw.partitions {
			p = m.Partition
		}
		if err := kw.w.Add(ctx, p, KindMessage, Position{}, m.Key, m.Value, m.Value == nil, m.Headers); err != nil {
			return fmt.Errorf("kafka: writing to %q: %w", kw.topic, err)
		}
	}
	if err := kw.w.Flush(ctx); err != nil {
		return fmt.Errorf("kafka: writing to %q: %w", kw.topic, err)
	}
	return nil
}

// Close stops the writer's producer.
func (kw *KeyedWriter) Close() error {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	if kw.w != nil {
		kw.w.Close()
	}
	kw.cancel()
	return nil
}
