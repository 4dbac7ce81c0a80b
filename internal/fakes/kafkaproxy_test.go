package fakes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// proxied starts kfake (one broker, topic "t" with 2 partitions) and a
// KafkaProxy in front of it, and returns a client factory whose
// connections all go through the proxy (kfake advertises its own address,
// so the dialer redirects it), plus a direct reader.
func proxied(t *testing.T) (*KafkaProxy, func(...kgo.Opt) *kgo.Client, func() []*kgo.Record) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "t"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	broker := c.ListenAddrs()[0]
	p, err := NewKafkaProxy(map[string]string{"127.0.0.1:0": broker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	addr := p.Addr(broker)
	if addr == "" {
		t.Fatal("no proxy address for the broker")
	}
	client := func(opts ...kgo.Opt) *kgo.Client {
		d := &net.Dialer{Timeout: 5 * time.Second}
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(addr),
			kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
				if host == broker {
					host = addr
				}
				return d.DialContext(ctx, network, host)
			}),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(0),
			kgo.MetadataMinAge(10 * time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
		}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	read := func() []*kgo.Record {
		cl, err := kgo.NewClient(kgo.SeedBrokers(broker),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, "t")
		if err == nil {
			err = listed.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		ends := map[int32]int64{}
		listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
		var out []*kgo.Record
		for got := map[int32]int64{}; !reached(got, ends); {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("reading back: %v (have %v of %v)", ctx.Err(), got, ends)
			}
			fs.EachRecord(func(r *kgo.Record) {
				out = append(out, r)
				got[r.Partition] = r.Offset + 1
			})
		}
		return out
	}
	return p, client, read
}

func reached(got, ends map[int32]int64) bool {
	for p, e := range ends {
		if got[p] < e {
			return false
		}
	}
	return true
}

func produce(t *testing.T, cl *kgo.Client, partition int32, key string, headers ...kgo.RecordHeader) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: partition, Key: []byte(key), Value: []byte("value of " + key), Headers: headers}).FirstErr()
}

func keysOf(recs []*kgo.Record) string {
	var ks []string
	for _, r := range recs {
		ks = append(ks, fmt.Sprintf("%d:%s", r.Partition, r.Key))
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func waitFired(t *testing.T, a *ArmedKafkaFault) {
	t.Helper()
	select {
	case <-a.Fired():
	case <-time.After(10 * time.Second):
		t.Fatal("the fault never fired")
	}
}

// TestKafkaProxyForwardsUntouched: without a fault every request and
// answer passes, and the proxy counts them.
func TestKafkaProxyForwardsUntouched(t *testing.T) {
	p, client, read := proxied(t)
	cl := client(kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	for i, k := range []string{"a", "b", "c"} {
		if err := produce(t, cl, int32(i%2), k); err != nil {
			t.Fatal(err)
		}
	}
	if got := keysOf(read()); got != "0:a,0:c,1:b" {
		t.Fatalf("topic holds %s", got)
	}
	if n := p.Requests(ProduceKey); n != 3 {
		t.Fatalf("%d produce requests forwarded, want 3", n)
	}
	if p.Requests(3) == 0 { // Metadata
		t.Fatal("no metadata request counted")
	}
}

// TestKafkaProxyCutAfterAnswer: the Nth matching Produce request reaches
// the broker and is appended, its answer never reaches the client, whose
// connection is cut; a producer without idempotence then retries and
// appends the record twice — the failure the proxy exists to provoke.
func TestKafkaProxyCutAfterAnswer(t *testing.T) {
	p, client, read := proxied(t)
	cl := client(kgo.DisableIdempotentWrite(), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	marker := kgo.RecordHeader{Key: "mde.marker", Value: []byte("snapshot-start")}
	fault := p.Arm(KafkaFault{
		APIKey: ProduceKey,
		Nth:    2,
		Match: func(r *KafkaRequest) bool {
			return r.HasRecord(func(topic string, rec ProducedRecord) bool {
				return topic == "t" && rec.Headers["mde.marker"] == "snapshot-start"
			})
		},
		Action: CutAfterAnswer,
	})
	if err := produce(t, cl, 0, "m1", marker); err != nil { // 1st match
		t.Fatal(err)
	}
	if err := produce(t, cl, 1, "r1"); err != nil { // no match
		t.Fatal(err)
	}
	select {
	case <-fault.Fired():
		t.Fatal("fired before its Nth request")
	default:
	}
	conns := p.Connections()
	if err := produce(t, cl, 1, "m2", marker); err != nil { // 2nd match: cut, retried
		t.Fatal(err)
	}
	waitFired(t, fault)
	req := fault.Request(p)
	batches, err := req.Produce()
	if err != nil || len(batches) != 1 || batches[0].Partition != 1 || string(batches[0].Records[0].Key) != "m2" ||
		batches[0].Records[0].Headers["mde.marker"] != "snapshot-start" {
		t.Fatalf("matched request %+v, %v", batches, err)
	}
	answer, err := fault.Answer(p)
	if err != nil || len(answer) != 1 || answer[0].ErrorCode != 0 || answer[0].BaseOffset != 1 {
		t.Fatalf("the broker's swallowed answer = %+v, %v; want success at offset 1", answer, err)
	}
	if p.Connections() <= conns {
		t.Fatal("the client did not reconnect after the cut")
	}
	if got := keysOf(read()); got != "0:m1,1:m2,1:m2,1:r1" {
		t.Fatalf("topic holds %s, want m2 twice (appended, answer lost, retried)", got)
	}
}

// TestKafkaProxyAnswerError: the broker appends the batch, the client is
// told REQUEST_TIMED_OUT; a producer without idempotence retries and
// duplicates it.
func TestKafkaProxyAnswerError(t *testing.T) {
	for _, code := range []int16{ErrRequestTimedOut, ErrNotLeaderOrFollower} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			p, client, read := proxied(t)
			cl := client(kgo.DisableIdempotentWrite())
			fault := p.Arm(KafkaFault{APIKey: ProduceKey, Action: AnswerError, ErrorCode: code})
			if err := produce(t, cl, 0, "x"); err != nil {
				t.Fatal(err)
			}
			waitFired(t, fault)
			if answer, err := fault.Answer(p); err != nil || len(answer) != 1 || answer[0].ErrorCode != 0 {
				t.Fatalf("broker's answer %+v, %v", answer, err)
			}
			if got := keysOf(read()); got != "0:x,0:x" {
				t.Fatalf("topic holds %s, want x twice", got)
			}
			if n := p.Requests(ProduceKey); n != 2 {
				t.Fatalf("%d produce requests, want the original and one retry", n)
			}
		})
	}
}

// TestKafkaProxyDecodesProduceRequests: records, keys and headers of every
// compression codec, and the idempotent producer's sequence numbers.
func TestKafkaProxyDecodesProduceRequests(t *testing.T) {
	for _, codec := range []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		p, client, _ := proxied(t)
		var seen []ProducedBatch
		p.Arm(KafkaFault{APIKey: ProduceKey, Nth: 1 << 30, Match: func(r *KafkaRequest) bool {
			b, err := r.Produce()
			if err != nil {
				t.Errorf("decode: %v", err)
			}
			seen = append(seen, b...)
			return false
		}})
		cl := client(kgo.ProducerBatchCompression(codec))
		for _, k := range []string{"k1", "k2"} {
			if err := produce(t, cl, 1, k, kgo.RecordHeader{Key: "h", Value: []byte("v-" + k)}); err != nil {
				t.Fatal(err)
			}
		}
		p.Close() // waits for the forwarding goroutines: seen is complete
		if len(seen) != 2 {
			t.Fatalf("%d batches decoded, want 2", len(seen))
		}
		for i, b := range seen {
			r := b.Records[0]
			k := fmt.Sprintf("k%d", i+1)
			if b.Topic != "t" || b.Partition != 1 || len(b.Records) != 1 || string(r.Key) != k ||
				string(r.Value) != "value of "+k || r.Headers["h"] != "v-"+k {
				t.Fatalf("batch %d = %+v", i, b)
			}
			if b.ProducerID < 0 || b.FirstSequence != int32(i) {
				t.Fatalf("batch %d: producer id %d sequence %d, want an idempotent producer's %d", i, b.ProducerID, b.FirstSequence, i)
			}
		}
	}
}

func TestKafkaProxyListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = NewKafkaProxy(map[string]string{ln.Addr().String(): "127.0.0.1:1"})
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("listening on a taken port: %v", err)
	}
}
