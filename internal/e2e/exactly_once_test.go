//go:build integration

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/testrig"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Exactly once within a run, whatever the brokers answer: the tests of
// this file run the built binary against the three-broker cluster of
// scripts/kafka-cluster.sh (replication factor 3, min.insync.replicas=2)
// and read every topic back record by record.

// onceTally checks one run's share of a topic message by message, in
// constant memory per record (a 1,000,000-record topic is never held):
// every line of the export exactly once with its key, partition and
// value, every marker exactly once per partition, records only between
// the run's markers, and partitionRecords of every snapshot-end equal to
// the run's records in that partition.
type onceTally struct {
	runID      string
	opts       synth.Options
	partitions int
	first      []int // mde.part → index of its first device
	seen       [][]uint8

	records      int64
	perPartition []int64
	phase        []int // per partition: 0 before snapshot-start, 1 open, 2 closed
	markers      []map[schema.MarkerKind]int
	endPartRecs  []int64
	endRecords   int64
	hashSum      uint64 // Σ lineHash of every record
	foreign      int64  // messages of other runs
	problems     []string
	problemCount int
}

// newOnceTally prepares the check of run runID of world w in a topic of
// partitions partitions.
func newOnceTally(w *world, runID string, partitions int) *onceTally {
	order := partOrder(w)
	c := &onceTally{
		runID:        runID,
		opts:         w.opts,
		partitions:   partitions,
		first:        make([]int, len(order)),
		seen:         make([][]uint8, len(order)),
		perPartition: make([]int64, partitions),
		phase:        make([]int, partitions),
		markers:      make([]map[schema.MarkerKind]int, partitions),
		endPartRecs:  make([]int64, partitions),
	}
	for idx, p := range order {
		c.first[idx] = p.First
		c.seen[idx] = make([]uint8, p.Devices)
	}
	for i := range c.markers {
		c.markers[i] = map[schema.MarkerKind]int{}
		c.endPartRecs[i] = -1
	}
	return c
}

// partOrder returns the world's synthetic parts in mde.part order (parts
// sorted by blob path).
func partOrder(w *world) []synth.PartSpec {
	paths := schemaParts(w)
	out := make([]synth.PartSpec, len(paths))
	for idx, path := range paths {
		unescaped, err := url.PathUnescape(path)
		if err != nil {
			w.t.Fatal(err)
		}
		found := false
		for _, p := range w.layout.Parts {
			if strings.HasSuffix(unescaped, "/"+p.Name) {
				out[idx], found = p, true
			}
		}
		if !found {
			w.t.Fatalf("manifest part %s is not in the synthetic layout", path)
		}
	}
	return out
}

// lineHash identifies a line's content at its position.
func lineHash(part, line int, value []byte) uint64 {
	h := fnv.New64a()
	var pos [16]byte
	binary.BigEndian.PutUint64(pos[:8], uint64(part))
	binary.BigEndian.PutUint64(pos[8:], uint64(line))
	h.Write(pos[:])
	h.Write(value)
	return h.Sum64()
}

// expectedHash is Σ lineHash over every line of the world's parts, from
// the gzip files themselves.
func expectedHash(t *testing.T, w *world) uint64 {
	t.Helper()
	var sum uint64
	for idx, p := range partOrder(w) {
		zr, err := gzip.NewReader(bytes.NewReader(w.blobs[p.Name]))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		line := 0
		for sc.Scan() {
			line++
			sum += lineHash(idx, line, sc.Bytes())
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if line != p.Devices {
			t.Fatalf("part %d has %d lines, want %d", idx, line, p.Devices)
		}
	}
	return sum
}

func (c *onceTally) problem(format string, args ...any) {
	c.problemCount++
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// add takes one message of the topic, in offset order per partition.
func (c *onceTally) add(partition int32, offset int64, key, value []byte, header func(string) string) {
	if header(schema.HeaderRunID) != c.runID {
		c.foreign++
		return
	}
	p := int(partition)
	where := fmt.Sprintf("partition %d offset %d", p, offset)
	if p < 0 || p >= c.partitions {
		c.problem("%s: partition beyond the topic's %d", where, c.partitions)
		return
	}
	if string(key) == schema.MarkerKey {
		var mk schema.Marker
		if err := json.Unmarshal(value, &mk); err != nil {
			c.problem("%s: marker value is not JSON: %v", where, err)
			return
		}
		c.markers[p][mk.Kind]++
		switch mk.Kind {
		case schema.MarkerStart:
			if c.phase[p] != 0 {
				c.problem("%s: snapshot-start after the run's first message in the partition", where)
			}
			c.phase[p] = 1
		case schema.MarkerEnd:
			if c.phase[p] != 1 {
				c.problem("%s: snapshot-end outside snapshot-start … snapshot-end", where)
			}
			c.phase[p] = 2
			if mk.PartitionRecords == nil || mk.Records == nil {
				c.problem("%s: snapshot-end without counts", where)
				return
			}
			c.endPartRecs[p] = *mk.PartitionRecords
			c.endRecords = *mk.Records
			if *mk.PartitionRecords != c.perPartition[p] {
				c.problem("%s: snapshot-end says partitionRecords %d, the partition holds %d records of the run before it",
					where, *mk.PartitionRecords, c.perPartition[p])
			}
		default:
			c.problem("%s: %s marker", where, mk.Kind)
		}
		return
	}
	c.records++
	c.perPartition[p]++
	if c.phase[p] != 1 {
		c.problem("%s: record outside snapshot-start … snapshot-end", where)
	}
	part, err1 := strconv.Atoi(header(schema.HeaderPart))
	line, err2 := strconv.Atoi(header(schema.HeaderLine))
	if err1 != nil || err2 != nil || part < 0 || part >= len(c.seen) || line < 1 || line > len(c.seen[part]) {
		c.problem("%s: mde.part %q mde.line %q outside the export", where, header(schema.HeaderPart), header(schema.HeaderLine))
		return
	}
	if c.seen[part][line-1] < 255 {
		c.seen[part][line-1]++
	}
	if want := synth.DeviceID(c.opts, c.first[part]+line-1); string(key) != want {
		c.problem("%s: part %d line %d has key %s, want %s", where, part, line, key, want)
	}
	if want := schema.Partition(key, c.partitions); want != p {
		c.problem("%s: key hashes to partition %d", where, want)
	}
	c.hashSum += lineHash(part, line, value)
}

// check fails the test unless the run is in the topic exactly once.
func (c *onceTally) check(t *testing.T, wantHash uint64) {
	t.Helper()
	var lines, missing, twice int64
	var examples []string
	for part, s := range c.seen {
		for i, n := range s {
			lines++
			switch {
			case n == 0:
				missing++
			case n > 1:
				twice++
			default:
				continue
			}
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf("part %d line %d: %d times", part, i+1, n))
			}
		}
	}
	if missing != 0 || twice != 0 {
		c.problem("%d of the export's %d lines missing, %d more than once (%s)", missing, lines, twice, strings.Join(examples, "; "))
	}
	if c.records != lines {
		c.problem("the topic holds %d records of the run, the export has %d lines", c.records, lines)
	}
	if c.endRecords != lines {
		c.problem("snapshot-end says records %d, want %d", c.endRecords, lines)
	}
	for p := range c.markers {
		if c.markers[p][schema.MarkerStart] != 1 || c.markers[p][schema.MarkerEnd] != 1 || len(c.markers[p]) != 2 {
			c.problem("partition %d holds markers %v, want one snapshot-start and one snapshot-end", p, c.markers[p])
		}
		if c.endPartRecs[p] != c.perPartition[p] {
			c.problem("partition %d: partitionRecords %d, records of the run %d", p, c.endPartRecs[p], c.perPartition[p])
		}
	}
	if c.hashSum != wantHash {
		c.problem("the records' values differ from the export's lines (checksum %x, want %x)", c.hashSum, wantHash)
	}
	if c.problemCount > 0 {
		t.Fatalf("run %s is not in the topic exactly once: %d problems, first ones:\n%s\nrecords per partition %v",
			c.runID, c.problemCount, strings.Join(c.problems, "\n"), c.perPartition)
	}
}

// streamTopic feeds fn every message of topic, partition by partition in
// offset order, from its start to its end offsets at the time of the call.
func streamTopic(t *testing.T, brokers []string, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatalf("start offsets of %s: %v", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	assign := map[int32]kgo.Offset{}
	next, end := map[int32]int64{}, map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(topic, o.Partition)
		if o.Offset > s.Offset {
			assign[o.Partition] = kgo.NewOffset().At(s.Offset)
			next[o.Partition], end[o.Partition] = s.Offset, o.Offset
		}
	})
	if len(assign) == 0 {
		return
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign})
	for remaining := len(assign); remaining > 0; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: timed out at %v of %v", topic, next, end)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < next[r.Partition] || r.Offset >= end[r.Partition] {
				return
			}
			if r.Offset != next[r.Partition] {
				t.Fatalf("%s[%d]: offset %d after %d", topic, r.Partition, r.Offset, next[r.Partition]-1)
			}
			fn(r)
			next[r.Partition] = r.Offset + 1
			if next[r.Partition] == end[r.Partition] {
				remaining--
			}
		})
	}
}

// checkExactlyOnce reads topic from the cluster and fails the test unless
// run runID of world w is in it exactly once.
func checkExactlyOnce(t *testing.T, c testrig.Cluster, w *world, topic, runID string, partitions int) {
	t.Helper()
	tally := newOnceTally(w, runID, partitions)
	streamTopic(t, c.Brokers, topic, func(r *kgo.Record) {
		tally.add(r.Partition, r.Offset, r.Key, r.Value, func(k string) string {
			for i := len(r.Headers) - 1; i >= 0; i-- {
				if r.Headers[i].Key == k {
					return string(r.Headers[i].Value)
				}
			}
			return ""
		})
	})
	tally.check(t, expectedHash(t, w))
}

// logEvents returns the JSON log lines of stderr whose message is msg.
func logEvents(stderr, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, `"`+msg+`"`) {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// assertEvents fails unless stderr holds at least one msg event and each
// has the fields named.
func assertEvents(t *testing.T, stderr, msg string, fields ...string) []map[string]any {
	t.Helper()
	evs := logEvents(stderr, msg)
	if len(evs) == 0 {
		t.Fatalf("no %q in the run's log:\n%s", msg, tail(stderr, 30))
	}
	for _, ev := range evs {
		for _, f := range fields {
			if _, ok := ev[f]; !ok {
				t.Fatalf("%q event without field %q: %v", msg, f, ev)
			}
		}
	}
	return evs
}

// recordBatchOf matches Produce requests carrying records (not markers) of topic.
func recordBatchOf(topic string) func(*fakes.KafkaRequest) bool {
	return func(r *fakes.KafkaRequest) bool {
		return r.HasRecord(func(tp string, rec fakes.ProducedRecord) bool {
			return tp == topic && string(rec.Key) != schema.MarkerKey
		})
	}
}

// markersOf matches Produce requests carrying a marker of kind in topic.
func markersOf(topic string, kind schema.MarkerKind) func(*fakes.KafkaRequest) bool {
	return func(r *fakes.KafkaRequest) bool {
		return r.HasRecord(func(tp string, rec fakes.ProducedRecord) bool {
			return tp == topic && rec.Headers[schema.HeaderMarker] == string(kind)
		})
	}
}

// TestClusterExactlyOnceAfterAnAppendedProduceFails runs the binary
// against the cluster through the Kafka proxy, which lets one produce
// request reach the leader, waits for its answer and then loses it (the
// connection is cut) or turns it into an error: the brokers appended the
// batch, tvm2kafka was not told so. Whether the request carried records,
// the snapshot-start or the snapshot-end markers, the run completes with
// every line once, every marker once per partition and exact counts.
func TestClusterExactlyOnceAfterAnAppendedProduceFails(t *testing.T) {
	c := testrig.ClusterEnv(t)
	w := newWorld(t, 6000, 3)
	const partitions = 6
	for _, tc := range []struct {
		name  string
		fault func(topic string) fakes.KafkaFault
		logs  []string // events the run must log
	}{
		{"connection cut after a record batch", func(topic string) fakes.KafkaFault {
			return fakes.KafkaFault{APIKey: fakes.ProduceKey, Match: recordBatchOf(topic), Nth: 5, Action: fakes.CutAfterAnswer}
		}, []string{"produce failed; retrying"}},
		{"connection cut after snapshot-start", func(topic string) fakes.KafkaFault {
			return fakes.KafkaFault{APIKey: fakes.ProduceKey, Match: markersOf(topic, schema.MarkerStart), Action: fakes.CutAfterAnswer}
		}, []string{"produce failed; retrying"}},
		{"connection cut after snapshot-end", func(topic string) fakes.KafkaFault {
			return fakes.KafkaFault{APIKey: fakes.ProduceKey, Match: markersOf(topic, schema.MarkerEnd), Action: fakes.CutAfterAnswer}
		}, []string{"produce failed; retrying"}},
		{"request timed out after a record batch", func(topic string) fakes.KafkaFault {
			return fakes.KafkaFault{APIKey: fakes.ProduceKey, Match: recordBatchOf(topic), Nth: 5, Action: fakes.AnswerError, ErrorCode: fakes.ErrRequestTimedOut}
		}, []string{"produce failed; retrying"}},
		{"not leader after a record batch", func(topic string) fakes.KafkaFault {
			return fakes.KafkaFault{APIKey: fakes.ProduceKey, Match: recordBatchOf(topic), Nth: 5, Action: fakes.AnswerError, ErrorCode: fakes.ErrNotLeaderOrFollower}
		}, []string{"produce failed; retrying"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := testrig.UniqueName(t, "mde")
			c.CreateTopic(t, topic, partitions, 3)
			proxy := c.Proxy(t)
			fault := proxy.Arm(tc.fault(topic))
			res := w.run(map[string]string{"KAFKA_BROKERS": c.ProxiedBrokerList(), "KAFKA_TOPIC": topic})
			select {
			case <-fault.Fired():
			default:
				t.Fatalf("the fault never fired (%d produce requests)\n%s", proxy.Requests(fakes.ProduceKey), tail(res.Stderr, 30))
			}
			answer, err := fault.Answer(proxy)
			if err != nil || len(answer) == 0 {
				t.Fatalf("the broker's answer to the faulted request: %+v, %v", answer, err)
			}
			for _, a := range answer {
				if a.ErrorCode != 0 {
					t.Fatalf("the broker did not append the faulted request (%+v): the test proves nothing", answer)
				}
			}
			t.Logf("faulted request appended at %+v; %d produce requests in all", answer, proxy.Requests(fakes.ProduceKey))
			if res.Code != 0 {
				t.Fatalf("exit %d\n%s", res.Code, tail(res.Stderr, 40))
			}
			checkExactlyOnce(t, c, w, topic, runID(t, res.Stderr), partitions)
			for _, ev := range tc.logs {
				assertEvents(t, res.Stderr, ev, "topic", "partition")
			}
		})
	}
}

// TestClusterRollingRestartPublishesEveryRecordOnce restarts the three
// brokers of the cluster one after another — each back in the ISR of every
// partition before the next goes — during a 1,000,000-record run, as an
// operator does for an upgrade: with SIGTERM (controlled shutdown: the
// leaders move away first) and with SIGKILL (a crash: the controller
// fences the node after its session timeout). Blob downloads are slowed
// while the brokers restart so that the run lasts through every restart,
// each node goes down only while records are being published, and the
// last part is held until the restarts are done so that the run cannot
// end before them. The run completes (exit 0) with every record
// once and exact counts, and its log shows the leader changes it went
// through.
func TestClusterRollingRestartPublishesEveryRecordOnce(t *testing.T) {
	c := testrig.ClusterEnv(t)
	if testing.Short() {
		t.Skip("1,000,000 records and six broker restarts")
	}
	const devices, parts, partitions = 1_000_000, 8, 6
	began := time.Now()
	w := newWorld(t, devices, parts)
	want := expectedHash(t, w)
	t.Logf("export of %d records in %d parts ready in %v", devices, parts, time.Since(began).Round(time.Millisecond))
	for _, v := range []struct {
		name string
		kill bool
	}{{"SIGTERM", false}, {"SIGKILL", true}} {
		t.Run(v.name, func(t *testing.T) {
			rollingRestart(t, c, w, want, partitions, v.kill)
		})
	}
}

func rollingRestart(t *testing.T, c testrig.Cluster, w *world, want uint64, partitions int, kill bool) {
	began := time.Now()
	topic := testrig.UniqueName(t, "mde")
	c.CreateTopic(t, topic, partitions, 3)

	// Cap the downloads so that the parts not held take at least 90 s:
	// records keep flowing through all three restarts, on a faster machine
	// too. Lifted once the brokers are restarted.
	order := partOrder(w)
	last := order[len(order)-1].Name
	var flowing int64
	for _, p := range order[:len(order)-1] {
		flowing += int64(len(w.blobs[p.Name]))
	}
	w.blobProx.SetRate(flowing / 90)
	t.Cleanup(func() { w.blobProx.SetRate(0) })
	hold := make(chan struct{})
	w.blobProx.Inject(last, fakes.Fault{Hold: hold})
	released := false
	release := func() {
		if !released {
			released = true
			w.blobProx.SetRate(0)
			close(hold)
		}
	}
	t.Cleanup(release)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := w.launch(map[string]string{
		"KAFKA_BROKERS": c.BrokerList(), "KAFKA_TOPIC": topic, "LOG_LEVEL": "info",
	}, "run")

	adm := kadm.NewClient(c.Client(t))
	published := func() int64 {
		qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
		defer qcancel()
		ends, err := adm.ListEndOffsets(qctx, topic)
		if err != nil || ends.Error() != nil {
			return -1
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	w.pollLive(p, 2*time.Minute, "records to flow", func() bool {
		return published() >= int64(partitions)+20_000
	})
	for _, node := range c.Nodes {
		// Every node goes down while records are being published: after
		// the previous restart, wait until they flow again.
		base := published()
		w.pollLive(p, 2*time.Minute, fmt.Sprintf("records to flow before node %d goes down", node), func() bool {
			return published() >= base+2000
		})
		before := published()
		if err := c.Restart(t, ctx, node, kill); err != nil {
			t.Fatalf("%v\nrun's log:\n%s", err, tail(p.stderr.String(), 30))
		}
		var after int64
		w.pollLive(p, time.Minute, "the cluster to answer after the restart", func() bool {
			after = published()
			return after >= 0
		})
		t.Logf("node %d restarted while %d messages were published (%d in the topic)", node, after-before, after)
	}
	restarted := time.Since(began)
	release()

	deadline, _ := ctx.Deadline()
	res := w.finish(p, time.Until(deadline))
	out := res.Stderr
	if res.Code != 0 {
		t.Fatalf("exit %d after the rolling restart\n%s", res.Code, tail(out, 40))
	}
	t.Logf("run done %v after its start (rolling restart over after %v)", time.Since(began).Round(time.Second), restarted.Round(time.Second))
	checkExactlyOnce(t, c, w, topic, runID(t, out), partitions)
	evs := assertEvents(t, out, "partition leader changed", "topic", "partition", "leader", "previous_leader")
	t.Logf("%d leader changes logged, %d produce retries", len(evs), len(logEvents(out, "produce failed; retrying")))
	if got := summaryOf(t, out)["records"]; got != float64(w.opts.Devices) {
		t.Fatalf("summary records %v, want %d", got, w.opts.Devices)
	}
}
