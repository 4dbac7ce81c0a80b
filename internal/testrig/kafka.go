//go:build integration

package testrig

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one message read back from a topic.
type Record struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	// Headers maps header key to value; for a repeated key the last one wins.
	Headers map[string]string
	// HeaderKeys lists the header keys in wire order (repeats included).
	HeaderKeys []string
}

// Client returns a franz-go client on the PLAINTEXT listener, closed when the
// test ends. Extra options are appended.
func (r Rig) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("testrig: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm admin client on the PLAINTEXT listener, closed when the test ends.
func (r Rig) Admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(r.Client(t))
}

// NewTopic creates a uniquely named topic with the given partition count
// (replication factor 1) and deletes it when the test ends.
func (r Rig) NewTopic(t testing.TB, partitions int) string {
	t.Helper()
	topic := UniqueName(t, "it")
	r.CreateTopic(t, topic, partitions, nil)
	return topic
}

// CreateTopic creates topic with the given partitions and topic configs
// (e.g. "max.message.bytes") and deletes it when the test ends.
func (r Rig) CreateTopic(t testing.TB, topic string, partitions int, configs map[string]*string) {
	t.Helper()
	adm := r.Admin(t)
	ctx := testContext(t, 60*time.Second)
	if _, err := adm.CreateTopic(ctx, int32(partitions), 1, configs, topic); err != nil {
		t.Fatalf("testrig: create topic %s: %v", topic, err)
	}
	t.Cleanup(func() { r.DeleteTopic(t, topic) })
}

// DeleteTopic deletes topic; a missing topic is not an error. Failures are
// logged, not fatal, so it is safe in cleanups (e.g. after the broker was stopped).
func (r Rig) DeleteTopic(t testing.TB, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.Brokers...))
	if err != nil {
		t.Logf("testrig: delete topic %s: %v", topic, err)
		return
	}
	defer cl.Close()
	ctx := testContext(t, 30*time.Second)
	resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Logf("testrig: delete topic %s: %v", topic, err)
	}
}

// ReadAll reads every record of every partition of topic, from each
// partition's log start offset up to its high watermark as of the call, and
// returns them ordered by partition, then offset.
func (r Rig) ReadAll(t testing.TB, topic string) []Record {
	t.Helper()
	adm := r.Admin(t)
	ctx := testContext(t, 2*time.Minute)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatalf("testrig: list start offsets of %s: %v", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("testrig: list end offsets of %s: %v", topic, err)
	}
	if len(ends[topic]) == 0 {
		t.Fatalf("testrig: topic %s has no partitions (does it exist?)", topic)
	}

	// next[p] is the next offset expected from partition p; end[p] the stop point.
	assign := map[int32]kgo.Offset{}
	next := map[int32]int64{}
	end := map[int32]int64{}
	for p, lo := range ends[topic] {
		s := starts[topic][p].Offset
		if lo.Offset > s {
			assign[p] = kgo.NewOffset().At(s)
			next[p] = s
			end[p] = lo.Offset
		}
	}
	var out []Record
	if len(assign) > 0 {
		cl := r.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}))
		remaining := len(assign)
		for remaining > 0 {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("testrig: ReadAll %s: timed out; still reading %v (end offsets %v)", topic, next, end)
			}
			fetches.EachError(func(tp string, p int32, err error) {
				t.Fatalf("testrig: fetch %s[%d]: %v", tp, p, err)
			})
			fetches.EachRecord(func(rec *kgo.Record) {
				p := rec.Partition
				if rec.Offset >= end[p] || rec.Offset < next[p] {
					return
				}
				out = append(out, toRecord(rec))
				next[p] = rec.Offset + 1
				if next[p] >= end[p] {
					remaining--
				}
			})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

func toRecord(rec *kgo.Record) Record {
	r := Record{
		Partition: rec.Partition,
		Offset:    rec.Offset,
		Timestamp: rec.Timestamp,
		Key:       append([]byte(nil), rec.Key...),
		Value:     append([]byte(nil), rec.Value...),
		Headers:   make(map[string]string, len(rec.Headers)),
	}
	for _, h := range rec.Headers {
		r.Headers[h.Key] = string(h.Value)
		r.HeaderKeys = append(r.HeaderKeys, h.Key)
	}
	return r
}

// ConsoleConsume runs Kafka's own console consumer (from IT_KAFKA_JARS) on the
// PLAINTEXT listener, reading topic from the beginning until maxMessages
// messages were printed, and returns its stdout. Each line is
// "Partition:<p>\t<headers>\t<key>\t<value>", headers as "k:v,k2:v2" or
// "NO_HEADERS". It fails the test when the consumer exits non-zero (for
// example when fewer than maxMessages arrive within 20 s).
func (r Rig) ConsoleConsume(t testing.TB, topic string, maxMessages int) string {
	t.Helper()
	if r.KafkaJars == "" {
		t.Fatal("testrig: IT_KAFKA_JARS is not set")
	}
	// Tool logging goes to stderr at WARN so stdout holds only messages.
	log4j := filepath.Join(t.TempDir(), "log4j2.properties")
	if err := os.WriteFile(log4j, []byte(toolLog4j), 0o644); err != nil {
		t.Fatalf("testrig: %v", err)
	}
	ctx := testContext(t, 90*time.Second)
	cmd := exec.CommandContext(ctx, "java", "-Xmx256m", "-Dlog4j2.configurationFile="+log4j,
		"-cp", filepath.Join(r.KafkaJars, "*"),
		"org.apache.kafka.tools.consumer.ConsoleConsumer",
		"--bootstrap-server", r.BrokerList(),
		"--topic", topic,
		"--from-beginning",
		"--max-messages", fmt.Sprint(maxMessages),
		"--property", "print.key=true",
		"--property", "print.headers=true",
		"--property", "print.partition=true",
		"--timeout-ms", "20000",
	)
	return run(t, cmd)
}

// KcatConsume runs kcat (librdkafka) on the PLAINTEXT listener, reading every
// partition of topic from the beginning to its end, and returns its stdout,
// one line per message: "<partition>\t<key>\t<headers k=v,…>\t<value>".
func (r Rig) KcatConsume(t testing.TB, topic string) string {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("testrig: kcat not found (apt-get install -y kcat)")
	}
	ctx := testContext(t, 90*time.Second)
	cmd := exec.CommandContext(ctx, "kcat", "-C", "-b", r.BrokerList(), "-t", topic,
		"-o", "beginning", "-e", "-q", "-f", `%p\t%k\t%h\t%s\n`)
	return run(t, cmd)
}

// StopKafka stops the broker with IT_KAFKA_SCRIPT. A cleanup starts it again
// if the test ends while it is down, so later tests find it running.
func (r Rig) StopKafka(t testing.TB) {
	t.Helper()
	r.kafkaScript(t, "stop")
	t.Cleanup(func() {
		if exec.Command(r.KafkaScript, "status").Run() != nil {
			r.kafkaScript(t, "start")
		}
	})
}

// StartKafka starts the broker with IT_KAFKA_SCRIPT and returns when it
// answers metadata requests.
func (r Rig) StartKafka(t testing.TB) {
	t.Helper()
	r.kafkaScript(t, "start")
}

func (r Rig) kafkaScript(t testing.TB, verb string) {
	t.Helper()
	if r.KafkaScript == "" {
		t.Fatal("testrig: IT_KAFKA_SCRIPT is not set")
	}
	ctx := testContext(t, 3*time.Minute)
	cmd := exec.CommandContext(ctx, r.KafkaScript, verb)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testrig: %s %s: %v\n%s", r.KafkaScript, verb, err, out)
	}
	t.Logf("testrig: kafka.sh %s took %v", verb, time.Since(start).Round(time.Millisecond))
}

func run(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("testrig: %s: %v\nstderr:\n%s\nstdout:\n%s", cmd.Args[0], err, tail(stderr.String(), 4000), tail(stdout.String(), 4000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

const toolLog4j = `status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
`
