package wire

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnsureTopic returns the partition count of topic, creating the topic with
// partitions, replicationFactor (-1 = broker default) and the topic configs
// of Config.TopicConfig when it does not exist. created tells whether this
// call created it.
func (k *Kafka) EnsureTopic(ctx context.Context, topic string, partitions, replicationFactor int) (n int, created bool, err error) {
	return k.ensureTopicOn(ctx, newTopic{
		Name: topic, Partitions: partitions, ReplicationFactor: replicationFactor,
		Configs: k.cfg.TopicConfig, ConfigsSetting: k.cfg.name("TopicConfig"),
	})
}

// newTopic is how EnsureTopicOn creates a missing topic.
type newTopic struct {
	Name                          string
	Partitions, ReplicationFactor int // ReplicationFactor -1: the brokers' default
	Configs                       map[string]string
	// Setting is the setting that names the topic and ConfigsSetting the
	// one Configs come from, for error messages ("" when there is none).
	Setting, ConfigsSetting string
}

// ensureTopicOn returns the partition count of t.Name on the brokers of c,
// creating the topic as t says when it does not exist. created tells
// whether this call created it (false when it existed, or was created
// concurrently by someone else).
func (k *Kafka) ensureTopicOn(ctx context.Context, t newTopic) (n int, created bool, err error) {
	c := k.client
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
	entries := configEntries(t.Configs)
	configs := make([]string, len(entries))
	for i, e := range entries {
		configs[i] = e.ConfigName + "=" + e.ConfigValue
	}
	k.log.Info().Str("topic", t.Name).Int("partitions", t.Partitions).Int("replication_factor", t.ReplicationFactor).Msg("creating topic")
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: t.ReplicationFactor, ConfigEntries: entries,
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
		return 0, false, fmt.Errorf("kafka: the brokers refused to create topic %s with %d partitions and replication factor %d%s: %w", name, t.Partitions, t.ReplicationFactor, k.cfg.sizeSettings(), cerr)
	default:
		return 0, false, fmt.Errorf("kafka: creating topic %s: %w", name, cerr)
	}

	// A new topic's metadata reaches every broker shortly after creation.
	err = Retry(ctx, Backoff{Initial: 50 * time.Millisecond, Max: time.Second, MaxElapsed: 30 * time.Second}, func() error {
		n, err = partitionCount(ctx, c, t.Name)
		if err == nil && n == 0 {
			err = errors.New("no partitions yet")
		}
		return err
	}, nil)
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

// PolicyError reports a table topic that exists but cannot serve as a
// table: a configuration problem for the operator to fix (exit status 2).
type PolicyError struct {
	Topic string
	// Setting names the topic's setting in the message.
	Setting string
	// Policy is the topic's cleanup.policy.
	Policy string
	Reason string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("%s: topic %q has cleanup.policy=%s: %s", e.Setting, e.Topic, e.Policy, e.Reason)
}

// Ensure makes sure topic exists as a compacted topic and returns its
// partition count. A missing topic is created with partitions,
// replicationFactor (-1 = broker default) and cleanup.policy=compact. An
// existing topic must have cleanup.policy=compact (compact,delete only
// with retention.ms=-1: otherwise devices that did not change for
// retention.ms would disappear); otherwise the error is a *PolicyError.
func (k *Kafka) EnsureCompacted(ctx context.Context, topic string, partitions, replicationFactor int) (n int, created bool, err error) {
	setting := k.cfg.name("TableTopic")
	n, created, err = k.ensureTopicOn(ctx, newTopic{
		Name: topic, Partitions: partitions, ReplicationFactor: replicationFactor,
		Configs: map[string]string{"cleanup.policy": "compact"}, Setting: setting,
	})
	if err == nil && !created { // not ours: it must be compacted
		err = checkPolicy(ctx, k.client, topic, setting)
	}
	if err != nil {
		return 0, false, err
	}
	return n, created, nil
}

// checkPolicy reads the topic's cleanup.policy and retention.ms.
func checkPolicy(ctx context.Context, c *kafka.Client, topic, setting string) error {
	resp, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"cleanup.policy", "retention.ms"},
	}}})
	if err != nil {
		return fmt.Errorf("kafka: reading the configuration of table topic %q (%s): %w", topic, setting, err)
	}
	var policy, retention string
	for _, r := range resp.Resources {
		if r.ResourceName != topic {
			continue
		}
		if r.Error != nil {
			return fmt.Errorf("kafka: reading the configuration of table topic %q (%s): %w", topic, setting, r.Error)
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
		return &PolicyError{Topic: topic, Setting: setting, Policy: policy,
			Reason: "a table topic must be compacted (set cleanup.policy=compact, or name another topic)"}
	case del && retention != "-1":
		return &PolicyError{Topic: topic, Setting: setting, Policy: policy,
			Reason: "with delete, devices that did not change for retention.ms (" + retention + ") would vanish from the table (set cleanup.policy=compact, or retention.ms=-1)"}
	}
	return nil
}
