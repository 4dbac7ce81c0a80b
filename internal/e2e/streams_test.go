//go:build integration

package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/testrig"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// streamsApp is the Kafka Streams application of internal/streamsapp
// (a KTable over the table topic, joined with the records topic), run as a
// JVM process against the rig's broker.
type streamsApp struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan struct{}
	dumps chan map[string]dumpLine
	exit  chan struct{}

	mu    sync.Mutex
	joins []joinLine
	tail  []string // its last lines of stderr, for failures
}

// dumpLine is one device of the application's store.
type dumpLine struct {
	partition, javaPartition int
	sha                      string
}

// joinLine is one record of the records topic joined with the table.
type joinLine struct {
	run, key                 string
	found, same              bool
	partition, javaPartition int
}

func streamsClasspath(t *testing.T) string {
	if cp := os.Getenv("IT_STREAMS_APP_CP"); cp != "" {
		return cp
	}
	// Not set by scripts/test.sh: build it (cached) with the same script.
	_, here, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(here), "..", "..", "scripts", "streamsapp.sh")
	if out, err := exec.Command(script, "build").CombinedOutput(); err != nil {
		t.Fatalf("building the Kafka Streams application: %v\n%s", err, out)
	}
	out, err := exec.Command("bash", "-c", `eval "$("$0" env)"; printf %s "$IT_STREAMS_APP_CP"`, script).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func startStreamsApp(t *testing.T, rig testrig.Rig, recordsTopic, tableTopic string, partitions int) *streamsApp {
	t.Helper()
	cmd := exec.Command("java", "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", streamsClasspath(t), "tvm2kafka.streams.DeviceTableApp",
		rig.BrokerList(), recordsTopic, tableTopic, testrig.UniqueName(t, "app"), t.TempDir(), strconv.Itoa(partitions))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &streamsApp{t: t, cmd: cmd, stdin: stdin, ready: make(chan struct{}), dumps: make(chan map[string]dumpLine), exit: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			a.mu.Lock()
			a.tail = append(a.tail, sc.Text())
			if len(a.tail) > 40 {
				a.tail = a.tail[1:]
			}
			a.mu.Unlock()
		}
	}()
	go a.read(stdout)
	t.Cleanup(func() {
		stdin.Close() // the application stops at the end of its input
		select {
		case <-a.exit:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-a.exit
		}
	})
	select {
	case <-a.ready:
	case <-a.exit:
		t.Fatalf("the Kafka Streams application exited:\n%s", a.stderrTail())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the Kafka Streams application is not running after 2 minutes:\n%s", a.stderrTail())
	}
	return a
}

func (a *streamsApp) stderrTail() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.tail, "\n")
}

func (a *streamsApp) read(stdout io.Reader) {
	defer func() { _ = a.cmd.Wait(); close(a.exit) }()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	dump := map[string]dumpLine{}
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		switch f[0] {
		case "READY":
			close(a.ready)
		case "JOIN":
			p, _ := strconv.Atoi(f[5])
			jp, _ := strconv.Atoi(f[6])
			a.mu.Lock()
			a.joins = append(a.joins, joinLine{run: f[1], key: f[2], found: f[3] == "true", same: f[4] == "true", partition: p, javaPartition: jp})
			a.mu.Unlock()
		case "DUMP":
			p, _ := strconv.Atoi(f[2])
			jp, _ := strconv.Atoi(f[3])
			dump[f[1]] = dumpLine{partition: p, javaPartition: jp, sha: f[4]}
		case "DUMPED":
			if f[1] == "-1" {
				dump = nil // the store could not be queried
			}
			a.dumps <- dump
			dump = map[string]dumpLine{}
		}
	}
}

// store asks the application for its store's content.
func (a *streamsApp) store() map[string]dumpLine {
	a.t.Helper()
	if _, err := io.WriteString(a.stdin, "dump\n"); err != nil {
		a.t.Fatalf("asking the application for its store: %v\n%s", err, a.stderrTail())
	}
	select {
	case d := <-a.dumps:
		return d
	case <-a.exit:
		a.t.Fatalf("the Kafka Streams application exited:\n%s", a.stderrTail())
	case <-time.After(90 * time.Second):
		a.t.Fatalf("no answer to dump:\n%s", a.stderrTail())
	}
	return nil
}

// awaitStore waits until the application's store holds exactly want
// (DeviceId → line), each device in the partition the Java client's
// partitioner gives its key.
func (a *streamsApp) awaitStore(want map[string]string, partitions int) {
	a.t.Helper()
	var last map[string]dumpLine
	testutil.Poll(a.t, 90*time.Second, fmt.Sprintf("the KTable to hold the snapshot's %d devices and lines", len(want)), func() bool {
		last = a.store()
		return sameStore(last, want)
	})
	for key, d := range last {
		if d.partition != d.javaPartition || d.partition != schema.Partition([]byte(key), partitions) {
			a.t.Fatalf("device %s in store partition %d; Java's partitioner says %d, tvm2kafka's %d",
				key, d.partition, d.javaPartition, schema.Partition([]byte(key), partitions))
		}
	}
}

func sameStore(got map[string]dumpLine, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		sum := sha256.Sum256([]byte(v))
		if got[k].sha != hex.EncodeToString(sum[:]) {
			return false
		}
	}
	return true
}

// joinsOf returns the join results of run's records once there are n.
func (a *streamsApp) joinsOf(run string, n int) []joinLine {
	a.t.Helper()
	var out []joinLine
	testutil.Poll(a.t, 90*time.Second, "the join results of "+run, func() bool {
		out = out[:0]
		a.mu.Lock()
		for _, j := range a.joins {
			if j.run == run {
				out = append(out, j)
			}
		}
		a.mu.Unlock()
		return len(out) >= n
	})
	if len(out) != n {
		a.t.Fatalf("%d join results for run %s, want one per record: %d", len(out), run, n)
	}
	return out
}

// TestKafkaStreamsKTableAndCoPartitionedJoin runs a Kafka Streams
// application (kafka-streams 4.1.1) against the table topic and the
// records topic through three snapshots (devices added, changed, removed):
// after each, its KTable's store holds exactly the snapshot's devices,
// each in the partition the Java client's partitioner picks; the records
// topic joined with the table (a co-partitioned KStream-KTable join) finds
// every device the table held, in the same partition.
func TestKafkaStreamsKTableAndCoPartitionedJoin(t *testing.T) {
	const partitions = 4
	w, tableTopic := tableWorld(t, partitions)
	w.rig.CreateTopic(t, w.Topic, partitions, nil) // a co-partitioned join needs equal partition counts
	env := map[string]string{"KAFKA_TABLE_TOPIC": tableTopic}
	app := startStreamsApp(t, w.rig, w.Topic, tableTopic, partitions)
	opts := synth.Options{Seed: w.opts.Seed}

	v1, v2, v3 := map[int]int{}, map[int]int{}, map[int]int{}
	for i := range 250 {
		if i < 200 {
			v1[i] = 1
		}
		v2[i] = 1
		if i%10 == 0 && i < 200 {
			v2[i] = 2
		}
		if i >= 60 {
			v3[i] = v2[i]
		}
	}
	e1, e2, e3 := devices(opts, 3, v1), devices(opts, 3, v2), devices(opts, 3, v3)

	// 1: 200 devices added.
	w.publish(e1, "2026-11-24T10:01:00Z")
	mustComplete(t, w.run(env))
	app.awaitStore(e1.table(t), partitions)

	// 2: 20 changed, 50 added. Each of the run's records meets the table
	// as the first snapshot left it (the table is updated after the
	// snapshot-end markers, so its records are newer).
	w.publish(e2, "2026-11-25T10:01:00Z")
	res := w.run(env)
	mustComplete(t, res)
	run2 := runID(t, res.Stderr)
	app.awaitStore(e2.table(t), partitions)
	in1 := e1.table(t)
	found := 0
	for _, j := range app.joinsOf(run2, len(v2)) {
		if j.partition != j.javaPartition || j.partition != schema.Partition([]byte(j.key), partitions) {
			t.Fatalf("record %s in partition %d; Java's partitioner says %d", j.key, j.partition, j.javaPartition)
		}
		if _, ok := in1[j.key]; ok {
			if !j.found {
				t.Fatalf("record %s of run 2 did not find its device in the table (partition %d)", j.key, j.partition)
			}
			found++
		}
	}
	if found != 200 {
		t.Fatalf("%d records joined with the table, want the 200 devices of the first snapshot", found)
	}

	// 3: 60 devices removed.
	w.publish(e3, "2026-11-26T10:01:00Z")
	mustComplete(t, w.run(env))
	app.awaitStore(e3.table(t), partitions)
}
