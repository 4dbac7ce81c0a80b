package wire

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

func newSeededCluster(t *testing.T, partitions int, topics ...string) (*kfake.Cluster, *kafka.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}
}

// write writes n messages to partition p of topic, in batches of batch:
// key k<i>, value v<i> (a null value when i%10 == 9), header h=<i>.
func write(t *testing.T, c *kfake.Cluster, topic string, p, n, batch int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: topic, BatchSize: batch, BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return p }), Compression: kafka.Lz4,
		RequiredAcks: kafka.RequireAll} // acknowledged, so that the offsets that follow see every message
	defer w.Close()
	var msgs []kafka.Message
	for i := range n {
		m := kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Headers: []kafka.Header{{Key: "h", Value: []byte(fmt.Sprint(i))}}}
		if i%10 != 9 {
			m.Value = []byte(fmt.Sprintf("v%d", i))
		}
		msgs = append(msgs, m)
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func TestPartitionsAndScanRanges(t *testing.T) {
	c, cl := newSeededCluster(t, 3, "t")
	write(t, c, "t", 1, 2500, 300)
	ctx := context.Background()
	parts, err := partitions(ctx, cl, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 3 || parts[1] != (Partition{ID: 1, First: 0, End: 2500}) || parts[0].End != 0 {
		t.Fatalf("partitions %+v", parts)
	}
	var st Stats
	s := &Scanner{client: cl, Topic: "t", MaxBytes: 4096, Stats: &st}
	for _, tc := range []struct{ from, to int64 }{{0, 2500}, {1234, 1300}, {2499, 2500}, {7, 7}, {2400, 9999}} {
		var got []int64
		err := s.Scan(ctx, 1, tc.from, tc.to, func(m *Message) error {
			i := m.Offset
			if string(m.Key) != fmt.Sprintf("k%d", i) || (i%10 == 9) != (m.Value == nil) ||
				(m.Value != nil && string(m.Value) != fmt.Sprintf("v%d", i)) {
				return fmt.Errorf("offset %d: key %q value %q", i, m.Key, m.Value)
			}
			if h, ok := m.Header("h"); !ok || string(h) != fmt.Sprint(i) {
				return fmt.Errorf("offset %d: header %q", i, h)
			}
			got = append(got, i)
			return nil
		})
		if err != nil {
			t.Fatalf("[%d,%d): %v", tc.from, tc.to, err)
		}
		want := min(tc.to, 2500) - tc.from
		if int64(len(got)) != max(want, 0) || (len(got) > 0 && (got[0] != tc.from || got[len(got)-1] != tc.from+want-1)) {
			t.Fatalf("[%d,%d): got %d messages (%v…)", tc.from, tc.to, len(got), got[:min(3, len(got))])
		}
	}
	if st.Fetches.Load() == 0 || st.Messages.Load() < 2500 {
		t.Fatalf("stats %d fetches %d messages", st.Fetches.Load(), st.Messages.Load())
	}
}

func TestScanStopFollowAndMissingTopic(t *testing.T) {
	c, cl := newSeededCluster(t, 1, "t")
	write(t, c, "t", 0, 50, 10)
	s := &Scanner{client: cl, Topic: "t", MaxWait: 50 * time.Millisecond}
	n := 0
	if err := s.Scan(context.Background(), 0, 0, 50, func(*Message) error { n++; return ErrStop }); err != nil || n != 1 {
		t.Fatalf("ErrStop: %v after %d messages", err, n)
	}

	// Following: messages written later arrive; cancellation ends the scan.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := make(chan int64, 100)
	done := make(chan error, 1)
	go func() {
		done <- s.Scan(ctx, 0, 45, -1, func(m *Message) error { seen <- m.Offset; return nil })
	}()
	for want := int64(45); want < 50; want++ {
		if got := <-seen; got != want {
			t.Fatalf("followed offset %d, want %d", got, want)
		}
	}
	write(t, c, "t", 0, 3, 3)
	for want := int64(50); want < 53; want++ {
		if got := <-seen; got != want {
			t.Fatalf("followed offset %d, want %d", got, want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended with %v", err)
	}

	if _, err := partitions(context.Background(), cl, "nope"); !errors.Is(err, ErrNoTopic) {
		t.Fatalf("missing topic: %v", err)
	}
}
