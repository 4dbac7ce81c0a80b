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

func admin(brokers string) (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}

func cmdCreateTopic(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("create-topic", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:19092", "bootstrap brokers")
	topic := fs.String("topic", "", "topic (required)")
	partitions := fs.Int("partitions", 6, "partitions")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return usageError{fmt.Errorf("create-topic: --topic is required")}
	}
	adm, closeFn, err := admin(*brokers)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, int32(*partitions), 1, nil, *topic)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", *topic, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("create topic %s: %w", *topic, resp.Err)
	}
	fmt.Fprintf(stdout, "created topic %s with %d partitions\n", *topic, *partitions)
	return nil
}

func cmdCount(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("count", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:19092", "bootstrap brokers")
	topic := fs.String("topic", "", "topic (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return usageError{fmt.Errorf("count: --topic is required")}
	}
	adm, closeFn, err := admin(*brokers)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	starts, err := adm.ListStartOffsets(ctx, *topic)
	if err != nil {
		return fmt.Errorf("start offsets of %s: %w", *topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, *topic)
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", *topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("end offsets of %s: %w", *topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		n += o.Offset - s.Offset
	})
	fmt.Fprintln(stdout, n)
	return nil
}

func cmdDeleteTopic(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("delete-topic", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:19092", "bootstrap brokers")
	topic := fs.String("topic", "", "topic (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *topic == "" {
		return usageError{fmt.Errorf("delete-topic: --topic is required")}
	}
	adm, closeFn, err := admin(*brokers)
	if err != nil {
		return err
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := adm.DeleteTopic(ctx, *topic)
	if err != nil {
		return fmt.Errorf("delete topic %s: %w", *topic, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("delete topic %s: %w", *topic, resp.Err)
	}
	fmt.Fprintf(stdout, "deleted topic %s\n", *topic)
	return nil
}
