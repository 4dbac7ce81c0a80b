//go:build integration

package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/table"
	"github.com/tvm2kafka/tvm2kafka/internal/testrig"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// export is a hand-made export: the lines of each part, in mde.part order.
type export [][]string

// devices builds an export of devices (index → version) spread over parts,
// every line a realistic synthetic record; version v > 1 changes the
// device's name, as a new export would change a field.
func devices(opts synth.Options, parts int, versions map[int]int) export {
	ids := make([]int, 0, len(versions))
	for i := range versions {
		ids = append(ids, i)
	}
	sort.Ints(ids)
	out := make(export, parts)
	for _, i := range ids {
		out[i%parts] = append(out[i%parts], deviceLine(opts, i, versions[i]))
	}
	return out
}

func deviceLine(opts synth.Options, i, v int) string {
	l := string(synth.Record(opts, i))
	if v > 1 {
		l = strings.Replace(l, `"DeviceName":"`, `"DeviceName":"v`+strconv.Itoa(v)+`-`, 1)
	}
	return l
}

// table returns DeviceId → line of the export; for a DeviceId that occurs
// more than once, its last line in export order.
func (e export) table(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, lines := range e {
		for _, l := range lines {
			id, err := schema.DeviceID([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			out[string(id)] = l
		}
	}
	return out
}

// publish makes the Defender fake answer export (gzip parts named so that
// their blob paths sort in export order) with generatedTime gen.
func (w *world) publish(e export, gen string) {
	w.t.Helper()
	blobs := map[string][]byte{}
	for i, lines := range e {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		for _, l := range lines {
			fmt.Fprintln(zw, l)
		}
		if err := zw.Close(); err != nil {
			w.t.Fatal(err)
		}
		blobs[fmt.Sprintf("%s/InfoGatheringExport/json/part-%05d.json.gz", gen[:10], i)] = buf.Bytes()
	}
	w.mu.Lock()
	w.blobs, w.gen = blobs, gen
	w.mu.Unlock()
	w.putBlobs(blobs)
}

// tableWorld is a world whose runs keep a table topic of partitions
// partitions (created beforehand, compacted).
func tableWorld(t *testing.T, partitions int) (*world, string) {
	w := newWorldWithBlobs(t, map[string][]byte{})
	topic := testrig.UniqueName(t, "table")
	compact := "compact"
	w.rig.CreateTopic(t, topic, partitions, map[string]*string{"cleanup.policy": &compact})
	return w, topic
}

// tableState reads the table topic and returns what a compacted reader
// ends up with, and every record.
func (w *world) tableState(topic string) (map[string]string, []testrig.Record) {
	w.t.Helper()
	recs := w.rig.ReadAll(w.t, topic)
	out := map[string]string{}
	for _, r := range recs {
		if r.Value == nil {
			delete(out, string(r.Key))
		} else {
			out[string(r.Key)] = string(r.Value)
		}
	}
	return out, recs
}

// assertTable fails unless the table topic holds exactly want, each record
// in its murmur2 partition of partitions; it returns the records runID
// wrote, by mde.change.
func (w *world) assertTable(topic string, partitions int, want map[string]string, runID string) map[string][]testrig.Record {
	w.t.Helper()
	got, recs := w.tableState(topic)
	if len(got) != len(want) {
		w.t.Fatalf("table topic holds %d devices, the snapshot %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			w.t.Fatalf("device %s: table %.60q…, snapshot %.60q…", k, got[k], v)
		}
	}
	mine := map[string][]testrig.Record{}
	for _, r := range recs {
		if p := schema.Partition(r.Key, partitions); int(r.Partition) != p {
			w.t.Fatalf("table record %s in partition %d, murmur2 over %d partitions says %d", r.Key, r.Partition, partitions, p)
		}
		if r.Headers[schema.HeaderRunID] == runID {
			ch := r.Headers[table.HeaderChange]
			mine[ch] = append(mine[ch], r)
		}
	}
	return mine
}

func counts(m map[string][]testrig.Record) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// TestTableTopicFollowsSnapshots: three exports (devices added, changed,
// removed) and the same export again; the table topic has 3 partitions,
// the records topic 6. After each complete run the table holds exactly the
// snapshot's devices; each run writes only the differences, with the
// record headers plus mde.change, and its tombstones after every
// snapshot-end.
func TestTableTopicFollowsSnapshots(t *testing.T) {
	w, topic := tableWorld(t, 3)
	env := map[string]string{"KAFKA_TABLE_TOPIC": topic}
	opts := synth.Options{Seed: w.opts.Seed}

	v1 := map[int]int{}
	for i := range 400 {
		v1[i] = 1
	}
	e1 := devices(opts, 3, v1)
	w.publish(e1, "2026-11-24T10:01:00Z")
	res := w.run(env)
	mustComplete(t, res)
	run1 := runID(t, res.Stderr)
	if got := counts(w.assertTable(topic, 3, e1.table(t), run1)); got[table.Added] != 400 || len(got) != 1 {
		t.Fatalf("first run wrote %v", got)
	}
	if ready := logLine(res.Stderr, "table topic ready"); ready == nil || ready["created"] != false || ready["partitions"] != float64(3) {
		t.Fatalf("table topic log line %v", ready)
	}

	// Every 10th device changed, 50 added.
	v2 := map[int]int{}
	for i := range 450 {
		v2[i] = 1
		if i%10 == 0 && i < 400 {
			v2[i] = 2
		}
	}
	e2 := devices(opts, 4, v2) // other part layout, same lines: unchanged devices stay unchanged
	w.publish(e2, "2026-11-25T10:01:00Z")
	res = w.run(env)
	mustComplete(t, res)
	run2 := runID(t, res.Stderr)
	mine := w.assertTable(topic, 3, e2.table(t), run2)
	if got := counts(mine); got[table.Added] != 50 || got[table.Changed] != 40 || len(got) != 2 {
		t.Fatalf("second run wrote %v, want 50 added and 40 changed", got)
	}
	for _, r := range mine[table.Changed] {
		for _, h := range []string{schema.HeaderExport, schema.HeaderGeneratedTime, schema.HeaderPart, schema.HeaderLine, schema.HeaderContentType} {
			if r.Headers[h] == "" {
				t.Fatalf("table record %s lacks header %s: %v", r.Key, h, r.Headers)
			}
		}
		if len(r.HeaderKeys) != 7 || r.Headers[schema.HeaderGeneratedTime] != "2026-11-25T10:01:00Z" {
			t.Fatalf("table record headers %v", r.HeaderKeys)
		}
	}

	// 100 devices gone, one changed.
	v3 := map[int]int{}
	for i := 100; i < 450; i++ {
		v3[i] = v2[i]
	}
	v3[300] = 3
	e3 := devices(opts, 3, v3)
	w.publish(e3, "2026-11-26T10:01:00Z")
	res = w.run(env)
	mustComplete(t, res)
	run3 := runID(t, res.Stderr)
	mine = w.assertTable(topic, 3, e3.table(t), run3)
	if got := counts(mine); got[table.Removed] != 100 || got[table.Changed] != 1 || len(got) != 2 {
		t.Fatalf("third run wrote %v, want 100 removed and 1 changed", got)
	}
	// The tombstones came after every snapshot-end of the run.
	lastEnd := time.Time{}
	for _, r := range w.rig.ReadAll(t, w.Topic) {
		if r.Headers[schema.HeaderRunID] == run3 && r.Headers[schema.HeaderMarker] == string(schema.MarkerEnd) && r.Timestamp.After(lastEnd) {
			lastEnd = r.Timestamp
		}
	}
	for _, r := range mine[table.Removed] {
		if r.Timestamp.Before(lastEnd) || len(r.HeaderKeys) != 4 {
			t.Fatalf("tombstone %s at %v before the last snapshot-end at %v, headers %v", r.Key, r.Timestamp, lastEnd, r.HeaderKeys)
		}
	}

	// The same export again: nothing to write. (Skipped as an unchanged
	// export, the run cancels the read-back it started while it checked
	// the tail, and logs nothing of it.)
	before := len(w.rig.ReadAll(t, topic))
	res = w.run(env)
	mustComplete(t, res)
	if after := len(w.rig.ReadAll(t, topic)); after != before {
		t.Fatalf("an unchanged export wrote %d table records", after-before)
	}
	if logLine(res.Stderr, "snapshot unchanged") != nil {
		if logLine(res.Stderr, "table topic read") != nil {
			t.Fatalf("an unchanged export read the table back")
		}
	} else if upd := logLine(res.Stderr, "table topic updated"); upd == nil || upd["unchanged"] != float64(350) || upd["removed"] != float64(0) {
		t.Fatalf("table log line %v", upd)
	}
}

// TestTableTopicAfterFailedRuns: an aborted run, a run stopped by SIGTERM,
// a run killed with SIGKILL after its snapshot-end markers but before its
// table writes, and a run whose table writes fail (exit 1, its snapshot
// still complete) leave no tombstone and nothing half-written the next
// complete run does not repair.
func TestTableTopicAfterFailedRuns(t *testing.T) {
	w, topic := tableWorld(t, 4)
	env := map[string]string{"KAFKA_TABLE_TOPIC": topic, "TVM2KAFKA_RETRY_MAX_ELAPSED": "4s"}
	opts := synth.Options{Seed: w.opts.Seed}
	v1, v2 := map[int]int{}, map[int]int{}
	for i := range 300 {
		v1[i] = 1
		if i >= 100 {
			v2[i] = 1 + i%2
		}
	}
	e1, e2 := devices(opts, 3, v1), devices(opts, 3, v2)
	w.publish(e1, "2026-11-24T10:01:00Z")
	mustComplete(t, w.run(env))
	want1 := e1.table(t)
	unchanged := func(what string) {
		t.Helper()
		got, recs := w.tableState(topic)
		if len(got) != len(want1) || len(recs) != len(want1) {
			t.Fatalf("%s: the table topic holds %d records for %d devices, want the first snapshot's %d", what, len(recs), len(got), len(want1))
		}
	}

	// Aborted: a part is missing.
	w.publish(e2, "2026-11-25T10:01:00Z")
	w.blobProx.Inject("part-00001.json.gz", fakes.Fault{Status: 404, Body: fakes.AzureErrorBody("BlobNotFound", "The specified blob does not exist.")})
	if res := w.run(env); res.Code != 1 {
		t.Fatalf("aborted run: exit %d", res.Code)
	}
	unchanged("after an aborted run")

	// SIGTERM while a part hangs.
	hold, _ := held(t)
	w.blobProx.Inject("part-00002.json.gz", fakes.Fault{Hold: hold})
	p := w.start(env)
	testutil.Poll(t, time.Minute, "the hanging part", func() bool { return w.blobProx.Held() == 1 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := w.finish(p, 40*time.Second); res.Code != 1 {
		t.Fatalf("SIGTERM: exit %d", res.Code)
	}
	unchanged("after SIGTERM")

	// The table topic refuses every record (max.message.bytes): a failure
	// the writer does not retry, so the run ends at once after its
	// snapshot-end markers — exit 1, the snapshot complete — even with
	// minutes of TVM2KAFKA_RETRY_MAX_ELAPSED (a table that retried what the
	// writer had already given up on would hang here for them).
	adm := w.rig.Admin(t)
	alter := func(v *string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		op := kadm.SetConfig
		if v == nil {
			op = kadm.DeleteConfig // back to the broker's default
		}
		resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: "max.message.bytes", Value: v}}, topic)
		if err == nil {
			_, err = resp.On(topic, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tiny := "200"
	alter(&tiny)
	p = w.start(map[string]string{"KAFKA_TABLE_TOPIC": topic, "TVM2KAFKA_RETRY_MAX_ELAPSED": "5m"})
	res := w.finish(p, time.Minute)
	if res.Code != 1 || !strings.Contains(res.Stderr, "snapshot complete, but") || !strings.Contains(res.Stderr, "MESSAGE_TOO_LARGE") && !strings.Contains(res.Stderr, "Message Size Too Large") {
		t.Fatalf("failing table writes: exit %d\n%s", res.Code, tail(res.Stderr, 10))
	}
	if sum := summaryOf(t, res.Stderr); sum["complete"] != true {
		t.Fatalf("summary %v, want complete=true: the records topic holds the snapshot", sum)
	}
	if vres := w.verify(nil); vres.Code != 0 {
		t.Fatalf("verify after the failed table update: exit %d\n%s", vres.Code, vres.Stdout)
	}
	unchanged("after failing table writes")

	// The export is the one the topic already ends with: an unchanged
	// export touches nothing, so the repair below is forced.
	forced := map[string]string{"KAFKA_TABLE_TOPIC": topic, "TVM2KAFKA_FORCE": "true"}
	// The next complete run repairs everything.
	alter(nil)
	res = w.run(forced)
	mustComplete(t, res)
	mine := counts(w.assertTable(topic, 4, e2.table(t), runID(t, res.Stderr)))
	if mine[table.Removed] != 100 || mine[table.Changed] != 100 || len(mine) != 2 {
		t.Fatalf("repair run wrote %v", mine)
	}
}

// TestTableTopicDuplicatesForeignRecordsAndPolicy: a DeviceId twice in one
// export yields one table record, its last line in export order; a record
// someone else wrote to the table topic is left alone and logged once; a
// table topic that is not compacted stops the run with exit 2 before the
// export API is called.
func TestTableTopicDuplicatesForeignRecordsAndPolicy(t *testing.T) {
	w, topic := tableWorld(t, 2)
	env := map[string]string{"KAFKA_TABLE_TOPIC": topic}
	opts := synth.Options{Seed: w.opts.Seed}
	v := map[int]int{}
	for i := range 60 {
		v[i] = 1
	}
	e := devices(opts, 3, v)
	// Device 7 once more: as the last line of part 0 and the first of
	// part 2. Part 2 comes last in export order, whatever the line numbers.
	dupFirst, dupLast := deviceLine(opts, 7, 5), deviceLine(opts, 7, 6)
	e[0] = append(e[0], dupFirst)
	e[2] = append([]string{dupLast}, e[2]...)
	w.publish(e, "2026-11-24T10:01:00Z")

	cl := w.rig.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("owner:security-team"), Value: []byte("keep me")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	res := w.run(env)
	mustComplete(t, res)
	want := e.table(t)
	want["owner:security-team"] = "keep me"
	id := string(must(schema.DeviceID([]byte(dupLast))))
	if want[id] != dupLast {
		t.Fatalf("test export: the last line of %s is not the part-2 line", id)
	}
	w.assertTable2(topic, want)
	n := 0
	for _, r := range w.rig.ReadAll(t, topic) {
		if string(r.Key) == id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d table records for the duplicated DeviceId, want 1", n)
	}
	if c := strings.Count(res.Stderr, "not a DeviceId"); c != 1 {
		t.Fatalf("foreign record logged %d times", c)
	}
	if !strings.Contains(res.Stderr, "more than once") {
		t.Fatalf("duplicates not logged")
	}

	// A table topic that deletes by retention: exit 2, no export API call.
	plain := testrig.UniqueName(t, "plain")
	w.rig.CreateTopic(t, plain, 2, nil)
	calls := len(w.defender.Calls())
	res = w.run(map[string]string{"KAFKA_TABLE_TOPIC": plain})
	if res.Code != 2 || !strings.Contains(res.Stderr, "KAFKA_TABLE_TOPIC") || !strings.Contains(res.Stderr, "cleanup.policy") {
		t.Fatalf("not compacted: exit %d\n%s", res.Code, tail(res.Stderr, 10))
	}
	if got := len(w.defender.Calls()); got != calls {
		t.Fatalf("the export API was called %d times", got-calls)
	}
}

// assertTable2 is assertTable for a table with records tvm2kafka did not
// write (their partition is theirs).
func (w *world) assertTable2(topic string, want map[string]string) {
	w.t.Helper()
	got, _ := w.tableState(topic)
	if len(got) != len(want) {
		w.t.Fatalf("table topic holds %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			w.t.Fatalf("key %s: table %.60q…, want %.60q…", k, got[k], v)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestTableReadBackOverSASL: the table's read-back and verify fetch on
// kafka-go's connections but read and decode the answers themselves; over
// SASL_SSL (SCRAM-SHA-512) and OAUTHBEARER too, a second run reads back
// every device the first one wrote and writes only the differences.
func TestTableReadBackOverSASL(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-512", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			var w *world
			var env map[string]string
			if mech == "OAUTHBEARER" {
				w, env = oauthWorld(t, 0, 1)
			} else {
				rig := testrig.Env(t)
				if len(rig.SASLBrokers) == 0 || rig.CAFile == "" || rig.ScramUser == "" {
					t.Skip("the SASL_SSL listener of the rig is not configured (IT_KAFKA_SASL_BROKERS, IT_KAFKA_CA_FILE, users)")
				}
				w = newWorldWithBlobs(t, map[string][]byte{})
				env = map[string]string{
					"KAFKA_BROKERS": w.rig.SASLBrokerList(), "KAFKA_TLS_CA_FILE": w.rig.CAFile, "KAFKA_SASL_MECHANISM": mech,
					"KAFKA_SASL_USERNAME": w.rig.ScramUser, "KAFKA_SASL_PASSWORD": w.rig.ScramPassword,
				}
			}
			topic := testrig.UniqueName(t, "table")
			compact := "compact"
			w.rig.CreateTopic(t, topic, 3, map[string]*string{"cleanup.policy": &compact})
			env["KAFKA_TABLE_TOPIC"] = topic
			opts := synth.Options{Seed: w.opts.Seed}
			v1, v2 := map[int]int{}, map[int]int{}
			for i := range 300 {
				v1[i], v2[i] = 1, 1+i%10/9 // every 10th device changes
			}
			w.publish(devices(opts, 2, v1), "2026-11-24T10:01:00Z")
			mustComplete(t, w.run(env))
			e2 := devices(opts, 2, v2)
			w.publish(e2, "2026-11-25T10:01:00Z")
			res := w.run(env)
			mustComplete(t, res)
			if read := logLine(res.Stderr, "table topic read"); read == nil || read["devices"] != float64(300) || read["records_read"] != float64(300) {
				t.Fatalf("read-back log line %v", read)
			}
			if got := counts(w.assertTable(topic, 3, e2.table(t), runID(t, res.Stderr))); got[table.Changed] != 30 || len(got) != 1 {
				t.Fatalf("second run wrote %v, want 30 changed", got)
			}
			if mech == "OAUTHBEARER" {
				return // verify takes no Azure credential
			}
			delete(env, "KAFKA_TABLE_TOPIC")
			if vres := w.verify(env); vres.Code != 0 || !strings.Contains(vres.Stdout, "300") {
				t.Fatalf("verify over SASL_SSL: exit %d\n%s\n%s", vres.Code, vres.Stdout, tail(vres.Stderr, 10))
			}
		})
	}
}

// TestTableTopicAfterItsPartitionCountWasRaised: once the table topic has
// more partitions, a device whose murmur2 partition changed is written to
// its new partition and its record in the old partition gets a tombstone
// there, so that every partition, compacted on its own, holds each device
// at most once; the run after that writes nothing.
func TestTableTopicAfterItsPartitionCountWasRaised(t *testing.T) {
	w, topic := tableWorld(t, 2)
	env := map[string]string{"KAFKA_TABLE_TOPIC": topic}
	v := map[int]int{}
	for i := range 200 {
		v[i] = 1
	}
	e := devices(synth.Options{Seed: w.opts.Seed}, 2, v)
	want := e.table(t)
	w.publish(e, "2026-11-24T10:01:00Z")
	mustComplete(t, w.run(env))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := w.rig.Admin(t).UpdatePartitions(ctx, 4, topic)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for k := range want {
		if schema.Partition([]byte(k), 4) != schema.Partition([]byte(k), 2) {
			moved++
		}
	}
	// live returns, per device, the partitions whose own compacted view
	// holds it.
	live := func() map[string][]int {
		per := map[int32]map[string]bool{}
		for _, r := range w.rig.ReadAll(t, topic) {
			if per[r.Partition] == nil {
				per[r.Partition] = map[string]bool{}
			}
			per[r.Partition][string(r.Key)] = r.Value != nil
		}
		out := map[string][]int{}
		for p, keys := range per {
			for k, ok := range keys {
				if ok {
					out[k] = append(out[k], int(p))
				}
			}
		}
		return out
	}

	w.publish(e, "2026-11-25T10:01:00Z") // the same devices, a newer export
	res := w.run(env)
	mustComplete(t, res)
	if read := logLine(res.Stderr, "table topic read"); read == nil || read["devices"] != float64(200-moved) {
		t.Fatalf("read-back %v, want %d devices in their partition (%d moved)", read, 200-moved, moved)
	}
	got := live()
	if len(got) != len(want) || moved == 0 {
		t.Fatalf("%d devices live, want %d (%d moved)", len(got), len(want), moved)
	}
	for k, ps := range got {
		if len(ps) != 1 || ps[0] != schema.Partition([]byte(k), 4) {
			t.Fatalf("device %s live in partitions %v, murmur2 over 4 says %d", k, ps, schema.Partition([]byte(k), 4))
		}
	}

	w.publish(e, "2026-11-26T10:01:00Z")
	before := len(w.rig.ReadAll(t, topic))
	mustComplete(t, w.run(env))
	if after := len(w.rig.ReadAll(t, topic)); after != before {
		t.Fatalf("the run after the move wrote %d records", after-before)
	}
}
