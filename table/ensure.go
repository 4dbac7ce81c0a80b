package table

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"

	"github.com/tvm2kafka/tvm2kafka/internal/kread"
)

// ConfigError reports a table topic that exists but cannot serve as a
// table: a configuration problem for the operator to fix (exit status 2).
type ConfigError struct {
	Topic string
	// Policy is the topic's cleanup.policy.
	Policy string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("KAFKA_TABLE_TOPIC: topic %q has cleanup.policy=%s: %s", e.Topic, e.Policy, e.Reason)
}

// Ensure makes sure topic exists as a compacted topic and returns its
// partition count. A missing topic is created with partitions,
// replicationFactor (-1 = broker default) and cleanup.policy=compact. An
// existing topic must have cleanup.policy=compact (compact,delete only
// with retention.ms=-1: otherwise devices that did not change for
// retention.ms would disappear); otherwise the error is a *ConfigError.
func Ensure(ctx context.Context, c *kafka.Client, topic string, partitions, replicationFactor int, log zerolog.Logger) (n int, created bool, err error) {
	parts, err := kread.Partitions(ctx, c, topic)
	switch {
	case err == nil:
		return len(parts), false, checkPolicy(ctx, c, topic)
	case !errors.Is(err, kread.ErrNoTopic):
		return 0, false, err
	}
	log.Info().Str("topic", topic).Int("partitions", partitions).Int("replication_factor", replicationFactor).
		Msg("creating table topic (cleanup.policy=compact)")
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: replicationFactor,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
	}}})
	if err != nil {
		return 0, false, fmt.Errorf("kafka: creating table topic %q: %w", topic, err)
	}
	switch cerr := resp.Errors[topic]; {
	case cerr == nil:
		created = true
	case errors.Is(cerr, kafka.TopicAlreadyExists): // created concurrently
		if err := checkPolicy(ctx, c, topic); err != nil {
			return 0, false, err
		}
	case errors.Is(cerr, kafka.TopicAuthorizationFailed), errors.Is(cerr, kafka.ClusterAuthorizationFailed):
		return 0, false, fmt.Errorf("kafka: table topic %q (KAFKA_TABLE_TOPIC) does not exist and this principal may not create it (create it beforehand with cleanup.policy=compact, or grant CREATE): %w", topic, cerr)
	default:
		return 0, false, fmt.Errorf("kafka: creating table topic %q (KAFKA_TABLE_TOPIC): %w", topic, cerr)
	}
	// A new topic's metadata reaches every broker shortly after creation.
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 50 * time.Millisecond
	bo.MaxInterval = time.Second
	bo.MaxElapsedTime = 30 * time.Second
	err = backoff.Retry(func() error {
		parts, err = kread.Partitions(ctx, c, topic)
		if err == nil && len(parts) == 0 {
			err = errors.New("no partitions yet")
		}
		return err
	}, backoff.WithContext(bo, ctx))
	if err != nil {
		return 0, created, fmt.Errorf("kafka: table topic %q was created but its metadata is not available: %w", topic, err)
	}
	return len(parts), created, nil
}

// checkPolicy reads the topic's cleanup.policy and retention.ms.
func checkPolicy(ctx context.Context, c *kafka.Client, topic string) error {
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"cleanup.policy", "retention.ms"},
	}}})
	if err != nil {
		return fmt.Errorf("kafka: reading the configuration of table topic %q (KAFKA_TABLE_TOPIC): %w", topic, err)
	}
	var policy, retention string
	for _, r := range resp.Resources {
		if r.ResourceName != topic {
			continue
		}
		if r.Error != nil {
			return fmt.Errorf("kafka: reading the configuration of table topic %q (KAFKA_TABLE_TOPIC): %w", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			switch e.ConfigName {
			case "cleanup.policy":
				policy = e.ConfigValue
			case "retention.ms":
				retention = e.ConfigValue
			}
		}
	}
	compact, del := false, false
	for _, p := range strings.Split(policy, ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			compact = true
		case "delete":
			del = true
		}
	}
	switch {
	case !compact:
		return &ConfigError{Topic: topic, Policy: policy,
			Reason: "a table topic must be compacted (set cleanup.policy=compact, or name another topic)"}
	case del && retention != "-1":
		return &ConfigError{Topic: topic, Policy: policy,
			Reason: "with delete, devices that did not change for retention.ms (" + retention + ") would vanish from the table (set cleanup.policy=compact, or retention.ms=-1)"}
	}
	return nil
}
