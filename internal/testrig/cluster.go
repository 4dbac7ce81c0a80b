//go:build integration

package testrig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// ClusterTestPrefix starts the name of every test that needs the
// three-broker cluster: scripts/test.sh starts the cluster only for them
// (go test -run '^TestCluster') and leaves them out of the other runs.
const ClusterTestPrefix = "TestCluster"

// Cluster is the three-broker KRaft cluster of scripts/kafka-cluster.sh
// (replication factor 3, min.insync.replicas=2), as read from the
// IT_CLUSTER_* environment that `scripts/kafka-cluster.sh env` prints.
type Cluster struct {
	// Brokers are the nodes' PLAINTEXT listeners (IT_CLUSTER_BROKERS).
	Brokers []string
	// ProxiedBrokers are the addresses the nodes' PROXIED listeners
	// advertise (IT_CLUSTER_PROXIED_BROKERS): a client bootstrapping
	// there reaches the cluster only through the proxy of Proxy.
	ProxiedBrokers []string
	// ProxyRoutes maps each proxied address to the PROXIED listener it
	// forwards to (IT_CLUSTER_PROXY_ROUTES).
	ProxyRoutes map[string]string
	// Nodes are the node ids (IT_CLUSTER_NODES), in restart order.
	Nodes []int
	// Script is scripts/kafka-cluster.sh (IT_CLUSTER_SCRIPT).
	Script string
}

// ClusterEnv reads the cluster from the environment and skips the test
// when IT_CLUSTER_BROKERS is unset. The test's name must start with
// ClusterTestPrefix, so that scripts/test.sh runs it with the cluster up.
func ClusterEnv(t testing.TB) Cluster {
	t.Helper()
	if !strings.HasPrefix(t.Name(), ClusterTestPrefix) {
		t.Fatalf("testrig: a test that needs the cluster must be named %s…, not %s (scripts/test.sh selects them by name)", ClusterTestPrefix, t.Name())
	}
	brokers := os.Getenv("IT_CLUSTER_BROKERS")
	if brokers == "" {
		t.Skip("IT_CLUSTER_BROKERS is not set: scripts/kafka-cluster.sh start && eval \"$(scripts/kafka-cluster.sh env)\"")
	}
	c := Cluster{
		Brokers:        splitList(brokers),
		ProxiedBrokers: splitList(os.Getenv("IT_CLUSTER_PROXIED_BROKERS")),
		ProxyRoutes:    map[string]string{},
		Script:         os.Getenv("IT_CLUSTER_SCRIPT"),
	}
	for _, r := range splitList(os.Getenv("IT_CLUSTER_PROXY_ROUTES")) {
		listen, upstream, ok := strings.Cut(r, "=")
		if !ok {
			t.Fatalf("testrig: bad IT_CLUSTER_PROXY_ROUTES entry %q", r)
		}
		c.ProxyRoutes[listen] = upstream
	}
	for _, n := range splitList(os.Getenv("IT_CLUSTER_NODES")) {
		id, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("testrig: bad IT_CLUSTER_NODES entry %q", n)
		}
		c.Nodes = append(c.Nodes, id)
	}
	return c
}

// BrokerList returns the PLAINTEXT brokers comma-separated.
func (c Cluster) BrokerList() string { return strings.Join(c.Brokers, ",") }

// ProxiedBrokerList returns the proxied addresses comma-separated, as
// KAFKA_BROKERS takes them.
func (c Cluster) ProxiedBrokerList() string { return strings.Join(c.ProxiedBrokers, ",") }

// Client returns a franz-go client on the PLAINTEXT listeners, closed
// when the test ends.
func (c Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("testrig: cluster client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates topic with partitions and replication factor rf and
// deletes it when the test ends.
func (c Cluster) CreateTopic(t testing.TB, topic string, partitions, rf int) {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	if _, err := kadm.NewClient(c.Client(t)).CreateTopic(ctx, int32(partitions), int16(rf), nil, topic); err != nil {
		t.Fatalf("testrig: create topic %s on the cluster: %v", topic, err)
	}
	c.awaitTopic(t, topic, partitions, rf)
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
		if err != nil {
			t.Logf("testrig: delete topic %s: %v", topic, err)
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Logf("testrig: delete topic %s: %v", topic, err)
		}
	})
}

// awaitTopic waits until every node's metadata shows topic with all its
// partitions led and all rf replicas in sync. A node learns of a new topic
// a moment after the controller; a client that meets it earlier (right
// after a rolling restart, say) is told NOT_LEADER or UNKNOWN_TOPIC and
// resends, and tests that count requests must not see that.
func (c Cluster) awaitTopic(t testing.TB, topic string, partitions, rf int) {
	t.Helper()
	cl := c.Client(t)
	ctx := testContext(t, 60*time.Second)
	ready := func(node int32) bool {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(int(node)))
		if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != partitions {
			return false
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 || len(p.ISR) != rf {
				return false
			}
		}
		return true
	}
	testutil.Poll(t, 60*time.Second, "topic "+topic+" ready on every node", func() bool {
		brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
		if err != nil || len(brokers) < rf {
			return false
		}
		for _, b := range brokers {
			if !ready(b.NodeID) {
				return false
			}
		}
		return true
	})
}

// Proxy starts a fakes.KafkaProxy on every proxied address, forwarding to
// the nodes' PROXIED listeners; it is closed when the test ends. A client
// given ProxiedBrokerList talks to the cluster only through it.
func (c Cluster) Proxy(t testing.TB) *fakes.KafkaProxy {
	t.Helper()
	if len(c.ProxyRoutes) == 0 {
		t.Fatal("testrig: IT_CLUSTER_PROXY_ROUTES is not set")
	}
	p, err := fakes.NewKafkaProxy(c.ProxyRoutes)
	if err != nil {
		t.Fatalf("testrig: %v (is another test's proxy still running?)", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Restart restarts one node with scripts/kafka-cluster.sh: SIGTERM
// (controlled shutdown), or SIGKILL when kill is set; it returns once the
// node is back in the ISR of every partition.
func (c Cluster) Restart(t testing.TB, ctx context.Context, node int, kill bool) error {
	t.Helper()
	if c.Script == "" {
		t.Fatal("testrig: IT_CLUSTER_SCRIPT is not set")
	}
	args := []string{"restart", strconv.Itoa(node)}
	if kill {
		args = append(args, "--kill")
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, c.Script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testrig: kafka-cluster.sh %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("testrig: kafka-cluster.sh %s took %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return nil
}
