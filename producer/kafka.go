package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
)

// MessageWriter writes messages and returns once all of them are
// acknowledged or failed. *kafka.Writer (synchronous) satisfies it; a
// partial failure is reported as kafka.WriteErrors, one entry per message.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// MessageWriterFunc adapts a function to MessageWriter.
type MessageWriterFunc func(ctx context.Context, msgs ...kafka.Message) error

// WriteMessages calls f.
func (f MessageWriterFunc) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	return f(ctx, msgs...)
}

// Discard returns a MessageWriter that acknowledges everything and keeps
// nothing: the dry-run sink.
func Discard() MessageWriter {
	return MessageWriterFunc(func(context.Context, ...kafka.Message) error { return nil })
}

// isolatedWriter is implemented by writers that can send one message in a
// produce request of its own. The pipeline uses it to find out which
// message of a batch the broker refused as MESSAGE_TOO_LARGE: kafka-go
// reports the batch's error for every message in it.
type isolatedWriter interface {
	WriteIsolated(ctx context.Context, msg kafka.Message) error
}

// Balancer routes messages of Topic to the partition the pipeline computed
// (Message.Partition, schema.Partition of the key for records, explicit for
// markers) and messages of any other topic (the DLQ) with the Java
// client's murmur2 partitioner.
type Balancer struct {
	Topic string
}

// Balance implements kafka.Balancer.
func (b *Balancer) Balance(msg kafka.Message, partitions ...int) int {
	if msg.Topic == b.Topic {
		return msg.Partition
	}
	return kafka.Murmur2Balancer{}.Balance(msg, partitions...)
}

// Kafka holds one Transport (TLS, SASL), a Client for metadata and topic
// creation on that transport, and the Writer.
type Kafka struct {
	cfg       Config
	log       zerolog.Logger
	transport *kafka.Transport
	client    *kafka.Client
	writer    *kafka.Writer
	single    *kafka.Writer // BatchSize 1: isolates a message refused as too large
}

// NewKafka validates cfg and builds the Kafka side. It makes no network
// call; connections are opened on first use.
func NewKafka(cfg Config, log zerolog.Logger) (*Kafka, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	mech, err := cfg.saslMechanism()
	if err != nil {
		return nil, err
	}
	codec, err := compressionCodec(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_COMPRESSION: %w", err)
	}
	transport := &kafka.Transport{
		Dial:        cfg.dialer(),
		DialTimeout: cfg.DialTimeout,
		IdleTimeout: 5 * time.Minute,
		MetadataTTL: 10 * time.Second,
		ClientID:    "tvm2kafka",
		TLS:         tlsCfg,
		SASL:        mech,
	}
	addr := kafka.TCP(cfg.Brokers...)
	batchBytes := max(cfg.BatchBytes, int64(cfg.MaxMessageBytes))
	errLog := kafka.LoggerFunc(func(msg string, args ...any) {
		log.Debug().Str("component", "kafka-go").Msgf(msg, args...)
	})
	newWriter := func(batchSize int) *kafka.Writer {
		return &kafka.Writer{
			Addr:                   addr,
			Balancer:               &Balancer{Topic: cfg.Topic},
			MaxAttempts:            3,
			WriteBackoffMin:        100 * time.Millisecond,
			WriteBackoffMax:        time.Second,
			BatchSize:              batchSize,
			BatchBytes:             batchBytes,
			BatchTimeout:           cfg.BatchTimeout,
			ReadTimeout:            cfg.WriteTimeout,
			WriteTimeout:           cfg.WriteTimeout,
			RequiredAcks:           kafka.RequireAll,
			Compression:            codec,
			ErrorLogger:            errLog,
			Transport:              transport,
			AllowAutoTopicCreation: false,
		}
	}
	k := &Kafka{
		cfg:       cfg,
		log:       log,
		transport: transport,
		client:    &kafka.Client{Addr: addr, Timeout: cfg.WriteTimeout, Transport: transport},
		writer:    newWriter(cfg.BatchSize),
		single:    newWriter(1),
	}
	return k, nil
}

// Writer returns the MessageWriter of the snapshot pipeline.
func (k *Kafka) Writer() MessageWriter { return kafkaWriter{k} }

type kafkaWriter struct{ k *Kafka }

func (w kafkaWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	return w.k.writer.WriteMessages(ctx, msgs...)
}

func (w kafkaWriter) WriteIsolated(ctx context.Context, msg kafka.Message) error {
	return w.k.single.WriteMessages(ctx, msg)
}

// Close flushes and closes the writers and the transport's idle connections.
func (k *Kafka) Close() error {
	err := errors.Join(k.writer.Close(), k.single.Close())
	k.transport.CloseIdleConnections()
	return err
}

// EnsureTopic returns the partition count of topic, creating the topic with
// partitions and replicationFactor (-1 = broker default) when it does not
// exist. created tells whether this call created it.
func (k *Kafka) EnsureTopic(ctx context.Context, topic string, partitions, replicationFactor int) (n int, created bool, err error) {
	n, err = k.partitionCount(ctx, topic)
	if err == nil {
		return n, false, nil
	}
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		return 0, false, err
	}
	k.log.Info().Str("topic", topic).Int("partitions", partitions).Int("replication_factor", replicationFactor).Msg("creating topic")
	resp, err := k.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: replicationFactor, ConfigEntries: k.cfg.topicConfigEntries()}},
	})
	if err != nil {
		return 0, false, fmt.Errorf("kafka: creating topic %q: %w", topic, err)
	}
	cerr := resp.Errors[topic]
	switch {
	case cerr == nil:
		created = true
	case errors.Is(cerr, kafka.TopicAlreadyExists): // created concurrently
	case errors.Is(cerr, kafka.TopicAuthorizationFailed), errors.Is(cerr, kafka.ClusterAuthorizationFailed):
		return 0, false, fmt.Errorf("kafka: topic %q does not exist and this principal may not create it (create it beforehand or grant CREATE): %w", topic, cerr)
	case errors.Is(cerr, kafka.InvalidConfiguration):
		return 0, false, fmt.Errorf("kafka: the brokers refused the configs of topic %q (KAFKA_TOPIC_CONFIG): %w", topic, cerr)
	case errors.Is(cerr, kafka.PolicyViolation), errors.Is(cerr, kafka.InvalidReplicationFactor), errors.Is(cerr, kafka.InvalidPartitionNumber):
		return 0, false, fmt.Errorf("kafka: the brokers refused to create topic %q with %d partitions and replication factor %d (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR): %w", topic, partitions, replicationFactor, cerr)
	default:
		return 0, false, fmt.Errorf("kafka: creating topic %q: %w", topic, cerr)
	}

	// A new topic's metadata reaches every broker shortly after creation.
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 50 * time.Millisecond
	bo.MaxInterval = time.Second
	bo.MaxElapsedTime = 30 * time.Second
	err = backoff.Retry(func() error {
		n, err = k.partitionCount(ctx, topic)
		if err == nil && n == 0 {
			err = errors.New("no partitions yet")
		}
		return err
	}, backoff.WithContext(bo, ctx))
	if err != nil {
		return 0, created, fmt.Errorf("kafka: topic %q was created but its metadata is not available: %w", topic, err)
	}
	return n, created, nil
}

// partitionCount asks the brokers for the topic's metadata.
func (k *Kafka) partitionCount(ctx context.Context, topic string) (int, error) {
	resp, err := k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("kafka: metadata of topic %q from %v: %w", topic, k.cfg.Brokers, err)
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
