package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
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
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	codec, err := compressionCodec(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_COMPRESSION: %w", err)
	}
	transport, err := NewTransport(cfg)
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

// produce implements produceClient with kafka-go's Client.RawProduce: the
// transport routes the request to the partition's leader.
func (k *Kafka) produce(ctx context.Context, topic string, partition int, batch []byte) error {
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

// leader implements produceClient from the transport's cached metadata.
func (k *Kafka) leader(ctx context.Context, topic string, partition int) (int, error) {
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

// initProducerID implements produceClient: an InitProducerId request
// without a transactional id, which any broker answers with a new producer
// id (epoch 0) for Kafka's idempotent-producer protocol.
func (k *Kafka) initProducerID(ctx context.Context) (producerID, error) {
	m, err := k.transport.RoundTrip(ctx, k.client.Addr, &initProducerIDRequest{
		TransactionTimeoutMs: 60_000,
		ProducerID:           -1,
		ProducerEpoch:        -1,
	})
	if err != nil {
		return producerID{}, err
	}
	res, ok := m.(*initproducerid.Response)
	if !ok {
		return producerID{}, fmt.Errorf("kafka: unexpected InitProducerId answer %T", m)
	}
	if res.ErrorCode != 0 {
		return producerID{}, kafka.Error(res.ErrorCode)
	}
	return producerID{id: res.ProducerID, epoch: res.ProducerEpoch}, nil
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

// EnsureTopic returns the partition count of topic, creating the topic with
// partitions, replicationFactor (-1 = broker default) and the topic configs
// of KAFKA_TOPIC_CONFIG when it does not exist. created tells whether this
// call created it.
func (k *Kafka) EnsureTopic(ctx context.Context, topic string, partitions, replicationFactor int) (n int, created bool, err error) {
	return EnsureTopicOn(ctx, k.client, NewTopic{
		Name: topic, Partitions: partitions, ReplicationFactor: replicationFactor,
		Configs: k.cfg.topicConfigEntries(), ConfigsSetting: "KAFKA_TOPIC_CONFIG",
	}, k.log)
}

// NewTopic is how EnsureTopicOn creates a missing topic.
type NewTopic struct {
	Name                          string
	Partitions, ReplicationFactor int // ReplicationFactor -1: the brokers' default
	Configs                       []kafka.ConfigEntry
	// Setting is the setting that names the topic and ConfigsSetting the
	// one Configs come from, for error messages ("" when there is none).
	Setting, ConfigsSetting string
}

// EnsureTopicOn returns the partition count of t.Name on the brokers of c,
// creating the topic as t says when it does not exist. created tells
// whether this call created it (false when it existed, or was created
// concurrently by someone else).
func EnsureTopicOn(ctx context.Context, c *kafka.Client, t NewTopic, log zerolog.Logger) (n int, created bool, err error) {
	n, err = partitionCount(ctx, c, t.Name)
	if err == nil {
		return n, false, nil
	}
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		return 0, false, err
	}
	name := strconv.Quote(t.Name)
	if t.Setting != "" {
		name += " (" + t.Setting + ")"
	}
	configs := make([]string, len(t.Configs))
	for i, e := range t.Configs {
		configs[i] = e.ConfigName + "=" + e.ConfigValue
	}
	log.Info().Str("topic", t.Name).Int("partitions", t.Partitions).Int("replication_factor", t.ReplicationFactor).Msg("creating topic")
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor, ConfigEntries: t.Configs,
	}}})
	if err != nil {
		return 0, false, fmt.Errorf("kafka: creating topic %s: %w", name, err)
	}
	cerr := resp.Errors[t.Name]
	switch {
	case cerr == nil:
		created = true
	case errors.Is(cerr, kafka.TopicAlreadyExists): // created concurrently
	case errors.Is(cerr, kafka.TopicAuthorizationFailed), errors.Is(cerr, kafka.ClusterAuthorizationFailed):
		with := ""
		if len(configs) > 0 {
			with = " with " + strings.Join(configs, ",")
		}
		return 0, false, fmt.Errorf("kafka: topic %s does not exist and this principal may not create it (create it beforehand%s, or grant CREATE): %w", name, with, cerr)
	case errors.Is(cerr, kafka.InvalidConfiguration):
		from := t.ConfigsSetting
		if from == "" {
			from = strings.Join(configs, ",")
		}
		return 0, false, fmt.Errorf("kafka: the brokers refused the configs of topic %s (%s): %w", name, from, cerr)
	case errors.Is(cerr, kafka.PolicyViolation), errors.Is(cerr, kafka.InvalidReplicationFactor), errors.Is(cerr, kafka.InvalidPartitionNumber):
		return 0, false, fmt.Errorf("kafka: the brokers refused to create topic %s with %d partitions and replication factor %d (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR): %w", name, t.Partitions, t.ReplicationFactor, cerr)
	default:
		return 0, false, fmt.Errorf("kafka: creating topic %s: %w", name, cerr)
	}

	// A new topic's metadata reaches every broker shortly after creation.
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 50 * time.Millisecond
	bo.MaxInterval = time.Second
	bo.MaxElapsedTime = 30 * time.Second
	err = backoff.Retry(func() error {
		n, err = partitionCount(ctx, c, t.Name)
		if err == nil && n == 0 {
			err = errors.New("no partitions yet")
		}
		return err
	}, backoff.WithContext(bo, ctx))
	if err != nil {
		return 0, created, fmt.Errorf("kafka: topic %s was created but its metadata is not available: %w", name, err)
	}
	return n, created, nil
}

// partitionCount asks the brokers for the topic's metadata.
func partitionCount(ctx context.Context, c *kafka.Client, topic string) (int, error) {
	resp, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("kafka: metadata of topic %q from %v: %w", topic, c.Addr, err)
	}
	for _, t := range resp.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return 0, t.Error
			}
			return 0, fmt.Errorf("kafka: metadata of topic %q: %w", topic, t.Error)
		}
		return len(t.Partitions), nil
	}
	return 0, kafka.UnknownTopicOrPartition
}

// writerDefaults implements Publisher from the configuration.
func (k *Kafka) writerDefaults() writerConfig {
	return writerConfig{
		codec:        k.codec,
		batchBytes:   int(max(k.cfg.BatchBytes, int64(k.cfg.MaxMessageBytes))),
		linger:       k.cfg.BatchTimeout,
		writeTimeout: k.cfg.WriteTimeout,
	}
}
