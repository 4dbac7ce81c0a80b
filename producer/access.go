package producer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// NewTransport builds the kafka-go Transport of cfg (TLS, SASL including
// OAUTHBEARER, timeouts) without any network call: the one NewKafka uses,
// and the one of programs that only read (tvm2kafka verify).
func NewTransport(cfg Config) (*kafka.Transport, error) {
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

// Client returns the kafka-go Client on the Kafka's Transport (metadata,
// offsets, fetches, topic administration).
func (k *Kafka) Client() *kafka.Client { return k.client }

// KeyedWriter writes messages to a topic, each to partition murmur2(key)
// mod the topic's partitions — or to the partition named by its WriterData
// when that has a Partition() int method (the table topic's tombstone for
// a record found in another partition) —, as an idempotent producer of its own (exactly
// once, in order per partition): WriteMessages returns when every message
// is acknowledged. A message with a nil Value is a tombstone. The producer
// id is obtained on the first write; Close ends it.
type KeyedWriter struct {
	k          *Kafka
	topic      string
	partitions int

	mu     sync.Mutex
	w      *topicWriter
	ctx    context.Context
	cancel context.CancelFunc
}

// NewKeyedWriter returns a KeyedWriter for topic, which has partitions
// partitions. It makes no network call.
func (k *Kafka) NewKeyedWriter(topic string, partitions int) *KeyedWriter {
	ctx, cancel := context.WithCancel(context.Background())
	return &KeyedWriter{k: k, topic: topic, partitions: partitions, ctx: ctx, cancel: cancel}
}

// WriteMessages implements the table package's Writer.
func (kw *KeyedWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	if kw.w == nil {
		wc := kw.k.writerDefaults()
		wc.topic, wc.partitions, wc.log = kw.topic, kw.partitions, kw.k.log
		wc.retryInitial, wc.retryMax = 200*time.Millisecond, kw.k.cfg.RetryMaxElapsed
		w, err := newTopicWriter(kw.ctx, kw.k, wc)
		if err != nil {
			return err
		}
		kw.w = w
	}
	var hdrs []header
	for i := range msgs {
		m := &msgs[i]
		hdrs = hdrs[:0]
		for _, h := range m.Headers {
			hdrs = append(hdrs, header{h.Key, h.Value})
		}
		p := schema.Partition(m.Key, kw.partitions)
		if to, ok := m.WriterData.(interface{ Partition() int }); ok && to.Partition() >= 0 && to.Partition() < kw.partitions {
			p = to.Partition()
		}
		if err := kw.w.streams[p].add(ctx, kindTable, position{}, m.Key, m.Value, m.Value == nil, hdrs); err != nil {
			return fmt.Errorf("kafka: writing to %q: %w", kw.topic, err)
		}
	}
	if err := kw.w.flush(ctx); err != nil {
		return fmt.Errorf("kafka: writing to %q: %w", kw.topic, err)
	}
	return nil
}

// Close stops the writer's producer.
func (kw *KeyedWriter) Close() error {
	kw.mu.Lock()
	defer kw.mu.Unlock()
	if kw.w != nil {
		kw.w.close()
	}
	kw.cancel()
	return nil
}
