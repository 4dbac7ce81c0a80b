//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/testrig"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// regenerate replaces the world's export by a new synthetic one (opts),
// uploads it to Azurite and makes the Defender fake answer its SAS URLs
// and generatedTime from now on, as Defender does for a later snapshot.
func (w *world) regenerate(opts synth.Options) {
	w.t.Helper()
	layout := synth.Plan(opts)
	blobs := map[string][]byte{}
	for _, p := range layout.Parts {
		var buf bytes.Buffer
		if _, err := synth.WritePart(&buf, opts, p); err != nil {
			w.t.Fatal(err)
		}
		blobs[p.Name] = buf.Bytes()
	}
	w.mu.Lock()
	w.opts, w.layout, w.blobs, w.gen = opts, layout, blobs, layout.GeneratedTime
	w.mu.Unlock()
	w.putBlobs(blobs)
}

// logLine returns the first JSON log line with message msg, or nil.
func logLine(stderr, msg string) map[string]any {
	for _, line := range strings.Split(stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			return m
		}
	}
	return nil
}

func mustComplete(t *testing.T, res result) {
	t.Helper()
	if res.Code != 0 {
		t.Fatalf("exit %d\n%s", res.Code, tail(res.Stderr, 40))
	}
}

// TestTwoSnapshotsInARow publishes two snapshots of different exports
// (different generatedTime, devices and parts) to one topic: both runs are
// complete and bracketed in every partition, and the second run's markers
// come after all of the first run's messages.
func TestTwoSnapshotsInARow(t *testing.T) {
	w := newWorld(t, 2000, 4)
	gen1 := w.gen
	res1 := w.run(nil)
	mustComplete(t, res1)
	run1ID := runID(t, res1.Stderr)
	msgs, rep := w.read(w.Topic)
	w.assertSnapshot(msgs, rep, run1ID, 0)

	// A later export: one day on, some devices gone, one part fewer.
	w.regenerate(synth.Options{Devices: 1500, Parts: 3, Seed: w.opts.Seed,
		GeneratedTime: synth.DefaultGeneratedTime().Add(24*time.Hour + 7*time.Minute)})
	gen2 := w.gen
	if gen2 == gen1 {
		t.Fatalf("generatedTime did not change: %s", gen2)
	}
	res2 := w.run(nil)
	mustComplete(t, res2)
	run2ID := runID(t, res2.Stderr)
	if run2ID == run1ID {
		t.Fatalf("both runs have run_id %s", run1ID)
	}

	msgs, rep = w.read(w.Topic)
	if len(rep.Runs) != 2 || len(rep.Problems) != 0 {
		t.Fatalf("topic holds %d runs, problems %v", len(rep.Runs), rep.Problems)
	}
	run2 := w.assertSnapshot(msgs, rep, run2ID, 0)
	run1 := rep.Run(run1ID)
	if run1 == nil || !run1.Complete || run1.Records != 2000 || run1.GeneratedTime != gen1 || run1.Parts != 4 {
		t.Fatalf("first run after the second: %+v", run1)
	}
	if run2.Records != 1500 || run2.GeneratedTime != gen2 || run2.Parts != 3 {
		t.Fatalf("second run: records %d generatedTime %s parts %d", run2.Records, run2.GeneratedTime, run2.Parts)
	}
	if !rep.Complete() {
		t.Fatalf("the last run of the topic is not complete")
	}

	// Per partition: every message of run 1 before every message of run 2,
	// and each run's messages carry their own generatedTime.
	last1, first2 := map[int32]int64{}, map[int32]int64{}
	for _, m := range msgs {
		switch m.Headers[schema.HeaderRunID] {
		case run1ID:
			if m.Headers[schema.HeaderGeneratedTime] != gen1 {
				t.Fatalf("run 1 message with generatedTime %q", m.Headers[schema.HeaderGeneratedTime])
			}
			if o, ok := last1[m.Partition]; !ok || m.Offset > o {
				last1[m.Partition] = m.Offset
			}
		case run2ID:
			if m.Headers[schema.HeaderGeneratedTime] != gen2 {
				t.Fatalf("run 2 message with generatedTime %q", m.Headers[schema.HeaderGeneratedTime])
			}
			if o, ok := first2[m.Partition]; !ok || m.Offset < o {
				first2[m.Partition] = m.Offset
			}
		default:
			t.Fatalf("message of unknown run %q", m.Headers[schema.HeaderRunID])
		}
	}
	for p := int32(0); p < int32(rep.Partitions); p++ {
		l, ok1 := last1[p]
		f, ok2 := first2[p]
		if !ok1 || !ok2 || l >= f {
			t.Fatalf("partition %d: run 1 ends at offset %d (%v), run 2 starts at %d (%v)", p, l, ok1, f, ok2)
		}
	}
	if n := len(w.defender.Calls()); n != 2 {
		t.Fatalf("%d export API calls for two runs, want 2", n)
	}
}

// TestExistingTopicIsUsedAsItIs: a topic that exists with 3 partitions is
// used with its 3 partitions (records hashed over 3, markers on 3) whatever
// KAFKA_TOPIC_PARTITIONS says; a missing topic is created with
// KAFKA_TOPIC_PARTITIONS partitions.
func TestExistingTopicIsUsedAsItIs(t *testing.T) {
	w := newWorld(t, 1500, 3)

	w.rig.CreateTopic(t, w.Topic, 3, nil)
	res := w.run(map[string]string{"KAFKA_TOPIC_PARTITIONS": "5"})
	mustComplete(t, res)
	msgs, rep := w.read(w.Topic)
	if rep.Partitions != 3 {
		t.Fatalf("existing topic now has %d partitions, want 3", rep.Partitions)
	}
	run := w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
	if run.Started != 3 || run.Ended != 3 || len(run.PerPartition) != 3 {
		t.Fatalf("markers on %d/%d partitions (%d counted), want 3", run.Started, run.Ended, len(run.PerPartition))
	}
	for p, n := range run.PerPartition {
		if n == 0 {
			t.Fatalf("partition %d of 3 got no record: %v", p, run.PerPartition)
		}
	}
	if ready := logLine(res.Stderr, "kafka topic ready"); ready == nil || ready["created"] != false || ready["partitions"] != float64(3) {
		t.Fatalf("topic log line %v, want created=false partitions=3", ready)
	}

	missing := strings.Replace(w.Topic, "mde-", "mde-new-", 1)
	t.Cleanup(func() { w.rig.DeleteTopic(t, missing) })
	res = w.run(map[string]string{"KAFKA_TOPIC": missing, "KAFKA_TOPIC_PARTITIONS": "5"})
	mustComplete(t, res)
	msgs, rep = w.read(missing)
	if rep.Partitions != 5 {
		t.Fatalf("created topic has %d partitions, want KAFKA_TOPIC_PARTITIONS=5", rep.Partitions)
	}
	run = w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
	if run.Started != 5 || run.Ended != 5 {
		t.Fatalf("markers on %d/%d partitions, want 5", run.Started, run.Ended)
	}
	if ready := logLine(res.Stderr, "kafka topic ready"); ready == nil || ready["created"] != true {
		t.Fatalf("topic log line %v, want created=true", ready)
	}
}

// TestSASLOverTLS publishes through the real broker's SASL_SSL listener
// with SCRAM-SHA-512 and with PLAIN (TLS verified against the rig's CA),
// reads back on the plaintext listener, and checks that the SASL password
// never shows at debug level; a wrong password fails clearly (exit 1).
func TestSASLOverTLS(t *testing.T) {
	rig0 := testrig.Env(t)
	if len(rig0.SASLBrokers) == 0 || rig0.CAFile == "" || rig0.ScramUser == "" || rig0.PlainUser == "" {
		t.Skip("the SASL_SSL listener of the rig is not configured (IT_KAFKA_SASL_BROKERS, IT_KAFKA_CA_FILE, users)")
	}
	for _, tc := range []struct{ mech, user, pass string }{
		{"SCRAM-SHA-512", rig0.ScramUser, rig0.ScramPassword},
		{"PLAIN", rig0.PlainUser, rig0.PlainPassword},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			w := newWorld(t, 800, 2)
			res := w.run(map[string]string{
				"KAFKA_BROKERS":        w.rig.SASLBrokerList(),
				"KAFKA_TLS_CA_FILE":    w.rig.CAFile,
				"KAFKA_SASL_MECHANISM": tc.mech,
				"KAFKA_SASL_USERNAME":  tc.user,
				"KAFKA_SASL_PASSWORD":  tc.pass,
			})
			if strings.Contains(res.Stdout+res.Stderr, tc.pass) {
				t.Errorf("output holds the SASL password")
			}
			mustComplete(t, res)
			if !strings.Contains(res.Stderr, `"level":"debug"`) {
				t.Fatalf("no debug lines: the secret check did not look at debug output")
			}
			msgs, rep := w.read(w.Topic)
			w.assertSnapshot(msgs, rep, runID(t, res.Stderr), 0)
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		w := newWorld(t, 100, 1)
		const wrong = "wrong-sasl-pw-7Qx2zK"
		res := w.run(map[string]string{
			"KAFKA_BROKERS":        w.rig.SASLBrokerList(),
			"KAFKA_TLS_CA_FILE":    w.rig.CAFile,
			"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
			"KAFKA_SASL_USERNAME":  w.rig.ScramUser,
			"KAFKA_SASL_PASSWORD":  wrong,
		})
		out := res.Stdout + res.Stderr
		if strings.Contains(out, wrong) {
			t.Errorf("output holds the wrong SASL password")
		}
		if res.Code != 1 {
			t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 20))
		}
		if !regexp.MustCompile(`(?i)"level":"error".*sasl authentication failed`).MatchString(res.Stderr) {
			t.Fatalf("no message naming the SASL authentication failure:\n%s", tail(res.Stderr, 20))
		}
		if n := len(w.defender.Calls()); n != 0 {
			t.Fatalf("%d export API calls although Kafka refused the credentials", n)
		}
		if res.Elapsed > 90*time.Second {
			t.Fatalf("took %v to give up", res.Elapsed)
		}
	})
}

// consumed is one message as an independent consumer printed it.
type consumed struct {
	partition int
	key       string
	headers   map[string]string
	value     string
}

// parseConsumer parses "<partition>\t<headers>\t<key>\t<value>" lines
// (field order given by keyFirst) with headers "k<sep>v,…".
func parseConsumer(t *testing.T, out string, keyFirst bool, partPrefix string, sep byte) []consumed {
	t.Helper()
	var msgs []consumed
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.SplitN(line, "\t", 4)
		if len(f) != 4 {
			t.Fatalf("unparsable consumer line %q", line)
		}
		var m consumed
		if _, err := fmt.Sscanf(strings.TrimPrefix(f[0], partPrefix), "%d", &m.partition); err != nil {
			t.Fatalf("partition of %q: %v", line, err)
		}
		hs := f[1]
		m.key, m.value = f[2], f[3]
		if keyFirst {
			m.key, hs = f[1], f[2]
		}
		m.headers = map[string]string{}
		for _, kv := range strings.Split(hs, ",") {
			i := strings.IndexByte(kv, sep)
			if i < 0 {
				t.Fatalf("header %q of line %.80q", kv, line)
			}
			m.headers[kv[:i]] = kv[i+1:]
		}
		msgs = append(msgs, m)
	}
	return msgs
}

var deviceIDRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

// checkConsumed checks what an independent consumer printed against the
// world's export and the README's message format.
func (w *world) checkConsumed(who string, msgs []consumed, partitions int, runID string) {
	t := w.t
	t.Helper()
	want := w.expectedRecords()
	if len(msgs) != len(want)+2*partitions {
		t.Fatalf("%s: %d messages, want %d records + %d markers", who, len(msgs), len(want), 2*partitions)
	}
	byPart := map[int][]consumed{}
	for _, m := range msgs {
		if m.partition < 0 || m.partition >= partitions {
			t.Fatalf("%s: message in partition %d of %d", who, m.partition, partitions)
		}
		byPart[m.partition] = append(byPart[m.partition], m)
		if m.headers[schema.HeaderRunID] != runID || m.headers[schema.HeaderExport] != schema.ExportInfoGathering ||
			m.headers[schema.HeaderGeneratedTime] != w.gen {
			t.Fatalf("%s: headers %v", who, m.headers)
		}
		if m.key == schema.MarkerKey {
			var mk schema.Marker
			if err := json.Unmarshal([]byte(m.value), &mk); err != nil {
				t.Fatalf("%s: marker value %q: %v", who, m.value, err)
			}
			if m.headers[schema.HeaderMarker] == "" || string(mk.Kind) != m.headers[schema.HeaderMarker] || mk.Partition != m.partition {
				t.Fatalf("%s: marker header %q, value %s in partition %d", who, m.headers[schema.HeaderMarker], m.value, m.partition)
			}
			continue
		}
		if !deviceIDRe.MatchString(m.key) {
			t.Fatalf("%s: key %q is not a 40-hex DeviceId", who, m.key)
		}
		if _, ok := m.headers[schema.HeaderMarker]; ok {
			t.Fatalf("%s: record %s has a marker header", who, m.key)
		}
		exp, ok := want[m.key]
		if !ok {
			t.Fatalf("%s: unknown or repeated key %s", who, m.key)
		}
		delete(want, m.key)
		if m.value != string(exp.line) || m.headers[schema.HeaderPart] != exp.part || m.headers[schema.HeaderLine] != exp.num ||
			m.headers[schema.HeaderContentType] != schema.ContentTypeJSON {
			t.Fatalf("%s: record %s differs from line %s of part %s (headers %v)", who, m.key, exp.num, exp.part, m.headers)
		}
		if p := schema.Partition([]byte(m.key), partitions); p != m.partition {
			t.Fatalf("%s: record %s in partition %d, murmur2 says %d", who, m.key, m.partition, p)
		}
	}
	if len(want) != 0 {
		t.Fatalf("%s: %d devices missing", who, len(want))
	}
	for p := 0; p < partitions; p++ {
		ms := byPart[p]
		if len(ms) < 2 || ms[0].headers[schema.HeaderMarker] != string(schema.MarkerStart) ||
			ms[len(ms)-1].headers[schema.HeaderMarker] != string(schema.MarkerEnd) {
			t.Fatalf("%s: partition %d not bracketed by start and end markers (%d messages)", who, p, len(ms))
		}
		var end schema.Marker
		if err := json.Unmarshal([]byte(ms[len(ms)-1].value), &end); err != nil || end.PartitionRecords == nil ||
			*end.PartitionRecords != int64(len(ms)-2) {
			t.Fatalf("%s: partition %d has %d records, its snapshot-end says %s", who, p, len(ms)-2, ms[len(ms)-1].value)
		}
	}
}

// TestIndependentConsumersSeeTheContract reads a finished snapshot with
// Kafka's own console consumer and with kcat (librdkafka) and checks the
// contract on what they print: every record once with its line, 40-hex
// keys, markers with their mde.marker header first and last in every
// partition, murmur2 partitions.
func TestIndependentConsumersSeeTheContract(t *testing.T) {
	w := newWorld(t, 1200, 3)
	res := w.run(map[string]string{"KAFKA_TOPIC_PARTITIONS": "4"})
	mustComplete(t, res)
	id := runID(t, res.Stderr)
	total := 1200 + 2*4

	kc := parseConsumer(t, w.rig.KcatConsume(t, w.Topic), true, "", '=')
	w.checkConsumed("kcat", kc, 4, id)

	cc := parseConsumer(t, w.rig.ConsoleConsume(t, w.Topic, total), false, "Partition:", ':')
	w.checkConsumed("kafka-console-consumer", cc, 4, id)
}

// TestDemoAndDryRun: the built binary's demo finishes complete, and
// `run --dry-run` against the world reads every record but publishes
// nothing although brokers are configured.
func TestDemoAndDryRun(t *testing.T) {
	t.Run("demo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, "demo", "--devices", "2000", "--parts", "3")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Env = []string{"GORACE=halt_on_error=1"}
		if err := cmd.Run(); err != nil {
			t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), tail(stderr.String(), 30))
		}
		out := stdout.String()
		if !strings.Contains(out, "snapshot COMPLETE") || strings.Contains(out, "INCOMPLETE") {
			t.Fatalf("demo did not report COMPLETE:\n%s", out)
		}
		if !strings.Contains(out, "2000 read back") || !strings.Contains(out, "2000 generated") {
			t.Fatalf("demo summary lacks the record counts:\n%s", out)
		}
	})

	t.Run("demo of every export", func(t *testing.T) {
		for _, e := range schema.Exports() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			cmd := exec.CommandContext(ctx, binPath, "demo", "--export", strings.ToLower(e.Name), "--devices", "150", "--parts", "2", "--log-level", "warn")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			cancel()
			records := 150 * synth.RowsPerDevice(e.Name)
			out := stdout.String()
			if err != nil || !strings.Contains(out, "snapshot COMPLETE") || !strings.Contains(out, fmt.Sprintf("%d read back", records)) ||
				!strings.Contains(out, "topic "+e.Topic()) {
				t.Fatalf("demo --export %s: %v\nstdout:\n%s\nstderr:\n%s", e.Name, err, out, tail(stderr.String(), 20))
			}
		}
	})

	t.Run("dry run", func(t *testing.T) {
		w := newWorld(t, 1700, 3)
		res := w.run(nil, "--dry-run")
		mustComplete(t, res)
		sum := summaryOf(t, res.Stderr)
		if sum["records"] != float64(1700) || sum["complete"] != false || sum["dry_run"] != true || sum["parts"] != float64(3) {
			t.Fatalf("dry-run summary %v, want 1700 records of 3 parts, dry_run, not complete (nothing published)", sum)
		}
		if len(w.defender.Calls()) != 1 {
			t.Fatalf("%d export calls", len(w.defender.Calls()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		topics, err := w.rig.Admin(t).ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if topics.Has(w.Topic) {
			msgs, _ := w.read(w.Topic)
			if len(msgs) != 0 {
				t.Fatalf("dry run published %d messages", len(msgs))
			}
		}
	})
}
