package testutil

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DeviceID returns a realistic 40-hex DeviceId.
func DeviceID(part, i int) string {
	h := sha1.Sum([]byte(fmt.Sprintf("device-%d-%d", part, i)))
	return hex.EncodeToString(h[:])
}

// RecordLine is a realistic-looking export line.
func RecordLine(part, i int) string {
	id := DeviceID(part, i)
	return fmt.Sprintf(`{"DeviceId":"%s","DeviceName":"host-%d-%d.contoso.com","OsPlatform":"Windows11","OsVersion":"10.0.22631","LastSeenTime":"2024-05-01 10:11:12","RbacGroupId":%d,"DeviceGatheredInfo":"{\"AvMode\":\"0\",\"AvEngineVersion\":\"1.1.24030.4\"}"}`,
		id, part, i, i%7)
}

// NewCluster starts an in-process broker.
func NewCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// ReadTopic reads every message of topic from the start to its current end
// offsets: duplicates would show up as extra records.
func ReadTopic(t testing.TB, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		want += o.Offset
	})
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: got %d of %d records", topic, len(out), want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch %s: %v", topic, err) })
		out = append(out, fs.Records()...)
	}
	return out
}
