package table

import (
	"context"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/tvm2kafka/tvm2kafka/producer"
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
	n, created, err = producer.EnsureTopicOn(ctx, c, producer.NewTopic{
		Name: topic, Partitions: partitions, ReplicationFactor: replicationFactor,
		Configs: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}, Setting: "KAFKA_TABLE_TOPIC",
	}, log)
	if err == nil && !created { // not ours: it must be compacted
		err = checkPolicy(ctx, c, topic)
	}
	if err != nil {
		return 0, false, err
	}
	return n, created, nil
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
