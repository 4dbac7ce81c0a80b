package producer

import (
	"fmt"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
)

// NewTransport builds the kafka-go Transport of cfg (TLS, SASL, timeouts)
// without any network call: what NewKafka uses, for programs that only
// read (tvm2kafka verify).
func NewTransport(cfg Config) (*kafka.Transport, error) {
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.saslMechanism()
	if err != nil {
		return nil, err
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	return &kafka.Transport{
		Dial:        (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		DialTimeout: dial,
		IdleTimeout: 5 * time.Minute,
		MetadataTTL: 10 * time.Second,
		ClientID:    "tvm2kafka",
		TLS:         tlsCfg,
		SASL:        mech,
	}, nil
}

// Client returns the kafka-go Client on the Kafka's Transport (metadata,
// offsets, fetches, topic administration).
func (k *Kafka) Client() *kafka.Client { return k.client }

// NewTopicWriter returns a kafka-go Writer for topic on the Kafka's
// Transport, with acks=all, the configured compression and batching, and
// balancer. The caller closes it.
func (k *Kafka) NewTopicWriter(topic string, balancer kafka.Balancer) (*kafka.Writer, error) {
	codec, err := compressionCodec(k.cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_COMPRESSION: %w", err)
	}
	return &kafka.Writer{
		Addr:            kafka.TCP(k.cfg.Brokers...),
		Topic:           topic,
		Balancer:        balancer,
		MaxAttempts:     3,
		WriteBackoffMin: 100 * time.Millisecond,
		WriteBackoffMax: time.Second,
		BatchSize:       k.cfg.BatchSize,
		BatchBytes:      max(k.cfg.BatchBytes, int64(k.cfg.MaxMessageBytes)),
		BatchTimeout:    k.cfg.BatchTimeout,
		ReadTimeout:     k.cfg.WriteTimeout,
		WriteTimeout:    k.cfg.WriteTimeout,
		RequiredAcks:    kafka.RequireAll,
		Compression:     codec,
		Transport:       k.transport,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			k.log.Debug().Str("component", "kafka-go").Str("topic", topic).Msgf(msg, args...)
		}),
	}, nil
}
