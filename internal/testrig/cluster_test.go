//go:build integration

package testrig

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
)

func produceN(t *testing.T, cl *kgo.Client, topic, prefix string, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("%s-%d", prefix, i)), Value: []byte(prefix)}
	}
	produce(t, cl, recs...)
}

func countAll(t *testing.T, rig Rig, topic string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range rig.ReadAll(t, topic) {
		out[string(r.Value)]++
	}
	return out
}

// TestClusterRestartWaitsUntilEveryReplicaIsInSync proves
// `kafka-cluster.sh restart`: the topic has three replicas, the node comes
// back in the ISR of every partition before it returns, nothing written
// before is lost and acks=all writes go on.
func TestClusterRestartWaitsUntilEveryReplicaIsInSync(t *testing.T) {
	c := ClusterEnv(t)
	topic := UniqueName(t, "it")
	c.CreateTopic(t, topic, 6, 3)
	cl := c.Client(t, kgo.RequiredAcks(kgo.AllISRAcks()))
	produceN(t, cl, topic, "before", 100)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := c.Restart(t, ctx, c.Nodes[1], false); err != nil {
		t.Fatal(err)
	}
	td, err := kadm.NewClient(c.Client(t)).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range td[topic].Partitions {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 {
			t.Errorf("partition %d: replicas %v, in sync %v after the restart", p.Partition, p.Replicas, p.ISR)
		}
	}
	produceN(t, cl, topic, "after", 100)
	got := countAll(t, Rig{Brokers: c.Brokers}, topic)
	if got["before"] != 100 || got["after"] != 100 || len(got) != 2 {
		t.Fatalf("topic holds %v, want 100 before and 100 after", got)
	}
}

// TestClusterProxiedListenersGoThroughTheProxy proves the PROXIED
// listeners: a client bootstrapping at the proxied addresses has every
// produce request pass the proxy (the brokers advertise it), and the
// proxy's faults reach a real broker.
func TestClusterProxiedListenersGoThroughTheProxy(t *testing.T) {
	c := ClusterEnv(t)
	topic := UniqueName(t, "it")
	c.CreateTopic(t, topic, 3, 3)
	p := c.Proxy(t)
	fault := p.Arm(fakes.KafkaFault{APIKey: fakes.ProduceKey, Nth: 2, Action: fakes.CutAfterAnswer})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ProxiedBrokers...), kgo.DisableIdempotentWrite(),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 3; i++ {
		produceN(t, cl, topic, fmt.Sprintf("r%d", i), 1)
	}
	select {
	case <-fault.Fired():
	default:
		t.Fatal("the fault did not fire: produce requests bypassed the proxy")
	}
	if answer, err := fault.Answer(p); err != nil || len(answer) != 1 || answer[0].ErrorCode != 0 {
		t.Fatalf("the broker's lost answer: %+v, %v", answer, err)
	}
	if n := p.Requests(fakes.ProduceKey); n != 4 {
		t.Fatalf("%d produce requests through the proxy, want 3 and one retry", n)
	}
	// Without idempotence the retry of the lost answer is a duplicate:
	// the proxy provokes exactly the failure tvm2kafka must survive.
	got := countAll(t, Rig{Brokers: c.Brokers}, topic)
	if got["r0"] != 1 || got["r1"] != 2 || got["r2"] != 1 {
		t.Fatalf("topic holds %v, want r1 twice", got)
	}
}
