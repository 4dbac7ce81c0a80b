package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicCmd parses the flags of a topic subcommand (--brokers, --topic and
// those flags adds) and runs do with an admin client, within 30 s.
func topicCmd(ctx context.Context, name string, args []string, flags func(*flag.FlagSet), do func(context.Context, *kadm.Client, string) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:19092", "bootstrap brokers")
	topic := fs.String("topic", "", "topic (required)")
	if flags != nil {
		flags(fs)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return usageError{fmt.Errorf("%s: --topic is required", name)}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return do(ctx, kadm.NewClient(cl), *topic)
}

func cmdCreateTopic(ctx context.Context, args []string, stdout io.Writer) error {
	var partitions *int
	flags := func(fs *flag.FlagSet) { partitions = fs.Int("partitions", 6, "partitions") }
	return topicCmd(ctx, "create-topic", args, flags, func(ctx context.Context, adm *kadm.Client, topic string) error {
		resp, err := adm.CreateTopic(ctx, int32(*partitions), 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
		fmt.Fprintf(stdout, "created topic %s with %d partitions\n", topic, *partitions)
		return nil
	})
}

func cmdCount(ctx context.Context, args []string, stdout io.Writer) error {
	return topicCmd(ctx, "count", args, nil, func(ctx context.Context, adm *kadm.Client, topic string) error {
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("start offsets of %s: %w", topic, err)
		}
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			return fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) {
			s, _ := starts.Lookup(o.Topic, o.Partition)
			n += o.Offset - s.Offset
		})
		fmt.Fprintln(stdout, n)
		return nil
	})
}

func cmdDeleteTopic(ctx context.Context, args []string, stdout io.Writer) error {
	return topicCmd(ctx, "delete-topic", args, nil, func(ctx context.Context, adm *kadm.Client, topic string) error {
		resp, err := adm.DeleteTopic(ctx, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("delete topic %s: %w", topic, err)
		}
		fmt.Fprintf(stdout, "deleted topic %s\n", topic)
		return nil
	})
}
