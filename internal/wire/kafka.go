package wire

import (
	"context"
	"fmt"
	"slices"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/initproducerid"
)

// Kafka holds one Transport (TLS, SASL) and a Client on it: metadata, topic
// creation and the idempotent produce path of the snapshot pipeline.
type Kafka struct {
	cfg       Config
	log       zerolog.Logger
	transport *kafka.Transport
	client    *kafka.Client
	codec     kafka.Compression
}

// NewKafka validates cfg and builds the Kafka side. It makes no network
// call; connections are opened on first use.
func NewKafka(cfg Config, log zerolog.Logger) (*Kafka, error) {
	cfg = cfg.withTuning()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	codec, err := compressionCodec(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.name("Compression"), err)
	}
	transport, err := newTransport(cfg)
	if err != nil {
		return nil, err
	}
	k := &Kafka{
		cfg:       cfg,
		log:       log,
		transport: transport,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: cfg.WriteTimeout, Transport: transport},
		codec:     codec,
	}
	return k, nil
}

// Close closes the transport's idle connections.
func (k *Kafka) Close() error {
	k.transport.CloseIdleConnections()
	return nil
}

// Produce implements Producer with kafka-go's Client.RawProduce: the
// transport routes the request to the partition's leader.
func (k *Kafka) Produce(ctx context.Context, topic string, partition int, batch []byte) error {
	resp, err := k.client.RawProduce(ctx, &kafka.RawProduceRequest{
		Topic:        topic,
		Partition:    partition,
		RequiredAcks: kafka.RequireAll,
		RawRecords:   protocol.RawRecordSet{Reader: &bytesReader{b: batch}},
	})
	if err != nil {
		return err
	}
	return resp.Error
}

// Leader implements Producer from the transport's cached metadata.
func (k *Kafka) Leader(ctx context.Context, topic string, partition int) (int, error) {
	resp, err := k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return -1, err
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		for _, p := range t.Partitions {
			if p.ID == partition {
				return p.Leader.ID, nil
			}
		}
	}
	return -1, fmt.Errorf("kafka: no metadata for partition %d of topic %q", partition, topic)
}

// InitProducerID implements Producer: an InitProducerId request
// without a transactional id, which any broker answers with a new producer
// id (epoch 0) for Kafka's idempotent-producer protocol.
func (k *Kafka) InitProducerID(ctx context.Context) (ProducerID, error) {
	m, err := k.transport.RoundTrip(ctx, k.client.Addr, &initProducerIDRequest{
		TransactionTimeoutMs: 60_000,
		ProducerID:           -1,
		ProducerEpoch:        -1,
	})
	if err != nil {
		return ProducerID{}, err
	}
	res, ok := m.(*initproducerid.Response)
	if !ok {
		return ProducerID{}, fmt.Errorf("kafka: unexpected InitProducerId answer %T", m)
	}
	if res.ErrorCode != 0 {
		return ProducerID{}, kafka.Error(res.ErrorCode)
	}
	return ProducerID{id: res.ProducerID, epoch: res.ProducerEpoch}, nil
}

// initProducerIDRequest is kafka-go's InitProducerId request under a type of
// its own. kafka-go's request type names a transaction, so its transport
// would first look for the transaction coordinator of the empty
// transactional id — which creates __transaction_state on the cluster and
// fails on brokers without transactions (Azure Event Hubs standard tier).
// An idempotent producer needs no coordinator: this type routes the request
// to one broker. The layout is kafka-go's, so kafka-go encodes it.
type initProducerIDRequest initproducerid.Request

// ApiKey implements protocol.Message.
func (r *initProducerIDRequest) ApiKey() protocol.ApiKey { return protocol.InitProducerId }

// Broker implements protocol.BrokerMessage: the broker with the lowest id.
func (r *initProducerIDRequest) Broker(c protocol.Cluster) (protocol.Broker, error) {
	ids := c.BrokerIDs()
	if len(ids) == 0 {
		return protocol.Broker{}, kafka.BrokerNotAvailable
	}
	return c.Brokers[slices.Min(ids)], nil
}

// WriterDefaults implements Sink from the configuration.
func (k *Kafka) WriterDefaults() WriterConfig {
	return WriterConfig{
		codec:        k.codec,
		BatchBytes:   int(max(k.cfg.BatchBytes, int64(k.cfg.MaxMessageBytes))),
		Linger:       k.cfg.BatchTimeout,
		WriteTimeout: k.cfg.WriteTimeout,
	}
}
