//go:build integration

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/table"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

const vulnerabilitiesExport = "SoftwareVulnerabilitiesExport"

// rows builds an export of synthetic records (index → version) of
// opts.Export spread over parts, a device's records in one part;
// version v > 1 changes the record's DeviceName.
func rows(opts synth.Options, parts int, versions map[int]int) export {
	ids := make([]int, 0, len(versions))
	for i := range versions {
		ids = append(ids, i)
	}
	sort.Ints(ids)
	per := synth.RowsPerDevice(opts.Export)
	out := make(export, parts)
	for _, i := range ids {
		out[(i/per)%parts] = append(out[(i/per)%parts], deviceLine(opts, i, versions[i]))
	}
	return out
}

// naturalTable returns natural key → line of the export (the last line
// of a key that occurs more than once).
func (e export) naturalTable(t *testing.T, name string) map[string]string {
	k := schema.NewKeys(schema.KeysOf(name))
	out := map[string]string{}
	for _, lines := range e {
		for _, l := range lines {
			_, key, err := k.Read([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			out[string(key)] = l
		}
	}
	return out
}

// TestVulnerabilitiesTableByNaturalKey: the vulnerabilities export end to
// end against the real broker. The records topic is keyed by DeviceId with
// the natural key in mde.key (verify.Check checks both for every record);
// the table topic is keyed by the natural key's compact JSON and follows
// three snapshots — rows added, changed, removed (tombstones by natural
// key) — and a fourth whose repeated natural key is published twice,
// counted as duplicateKeys, and kept last in the table.
func TestVulnerabilitiesTableByNaturalKey(t *testing.T) {
	w, topic := tableWorld(t, 4)
	w.mu.Lock()
	w.opts.Export = vulnerabilitiesExport
	w.mu.Unlock()
	env := map[string]string{"KAFKA_TABLE_TOPIC": topic, "MDE_EXPORT": strings.ToLower(vulnerabilitiesExport)}
	opts := synth.Options{Export: vulnerabilitiesExport, Seed: w.opts.Seed}
	per := synth.RowsPerDevice(vulnerabilitiesExport)

	v1 := map[int]int{}
	for i := range 40 * per {
		v1[i] = 1
	}
	e1 := rows(opts, 3, v1)
	w.publish(e1, "2026-11-24T10:01:00Z")
	res := w.run(env)
	mustComplete(t, res)
	run1 := runID(t, res.Stderr)
	msgs, rep := w.read(w.Topic)
	if r := rep.Run(run1); r == nil || !r.Complete || r.Records != int64(40*per) {
		t.Fatalf("records topic: %+v", r)
	}
	for _, m := range msgs {
		if string(m.Key) != schema.MarkerKey && (len(m.Key) != 40 || !strings.HasPrefix(m.Headers[schema.HeaderKey], `{"DeviceId":"`+string(m.Key)+`","SoftwareVendor":`)) {
			t.Fatalf("record key %q, mde.key %q", m.Key, m.Headers[schema.HeaderKey])
		}
	}
	if got := counts(w.assertTable(topic, 4, e1.naturalTable(t, vulnerabilitiesExport), run1)); got[table.Added] != 40*per || len(got) != 1 {
		t.Fatalf("first run wrote %v", got)
	}
	if s := summaryOf(t, res.Stderr); s["duplicateKeys"] != float64(0) {
		t.Fatalf("summary %v", s)
	}

	// Every 7th row changed, 5 devices added.
	v2 := map[int]int{}
	for i := range 45 * per {
		v2[i] = 1
		if i%7 == 0 && i < 40*per {
			v2[i] = 2
		}
	}
	e2 := rows(opts, 3, v2)
	w.publish(e2, "2026-11-25T10:01:00Z")
	res = w.run(env)
	mustComplete(t, res)
	changed := (40*per + 6) / 7
	if got := counts(w.assertTable(topic, 4, e2.naturalTable(t, vulnerabilitiesExport), runID(t, res.Stderr))); got[table.Added] != 5*per || got[table.Changed] != changed || len(got) != 2 {
		t.Fatalf("second run wrote %v, want %d added and %d changed", got, 5*per, changed)
	}

	// Device 3 gone, and every row without a known CVE fixed... gone.
	v3 := map[int]int{}
	removed := 0
	for i, v := range v2 {
		if i/per == 3 || i%per == per-1 {
			removed++
			continue
		}
		v3[i] = v
	}
	e3 := rows(opts, 3, v3)
	w.publish(e3, "2026-11-26T10:01:00Z")
	res = w.run(env)
	mustComplete(t, res)
	mine := w.assertTable(topic, 4, e3.naturalTable(t, vulnerabilitiesExport), runID(t, res.Stderr))
	if got := counts(mine); got[table.Removed] != removed || len(got) != 1 {
		t.Fatalf("third run wrote %v, want %d tombstones", got, removed)
	}
	for _, r := range mine[table.Removed] {
		if r.Value != nil || !strings.HasPrefix(string(r.Key), `{"DeviceId":"`) || !strings.HasSuffix(string(r.Key), `}`) {
			t.Fatalf("tombstone %q", r.Key)
		}
	}

	// A natural key twice: both lines published, the last one kept.
	e4 := rows(opts, 3, v3)
	dup := strings.Replace(e4[0][0], `"DeviceName":"`, `"DeviceName":"dup-`, 1)
	e4[2] = append(e4[2], dup)
	w.publish(e4, "2026-11-27T10:01:00Z")
	res = w.run(env)
	mustComplete(t, res)
	if s := summaryOf(t, res.Stderr); s["duplicateKeys"] != float64(1) || s["records"] != float64(len(v3)+1) {
		t.Fatalf("summary %v, want duplicateKeys 1 and every line published", s)
	}
	want := e4.naturalTable(t, vulnerabilitiesExport)
	w.assertTable(topic, 4, want, runID(t, res.Stderr))
}

// TestServeTakesSeveralExports: one serve with MDE_EXPORTS takes each
// export on its own topic ({export} in KAFKA_TOPIC), through one rate
// limiter; an export the app may not read (403) fails alone, with a
// message naming its permission, while the others complete.
func TestServeTakesSeveralExports(t *testing.T) {
	w := newWorldFor(t, "SoftwareInventoryExport", 300, 2)
	other := newWorldFor(t, "CertificateAssessmentExport", 200, 2)
	w.addExport(other)
	w.deny("BaselineComplianceAssessmentExport", http.StatusForbidden)
	base := w.Topic
	p := w.launch(map[string]string{
		"MDE_EXPORTS": "SoftwareInventoryExport,CertificateAssessmentExport,BaselineComplianceAssessmentExport",
		"KAFKA_TOPIC": base + ".{export}", "TVM2KAFKA_INTERVAL": "1h", "TVM2KAFKA_HTTP_ADDR": "127.0.0.1:0",
	}, "serve")
	summaries := func() map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, l := range findLog(p.stderr.String(), "snapshot summary") {
			out[l["topic"].(string)] = l
		}
		return out
	}
	w.pollLive(p, 3*time.Minute, "a summary of every export", func() bool { return len(summaries()) == 3 })
	sums := summaries()
	for _, e := range []struct {
		name    string
		records int64
	}{{"software", 300}, {"certificates", 200}} {
		s := sums[base+"."+e.name]
		if s["result"] != "complete" || s["records"] != float64(e.records) {
			t.Fatalf("%s: summary %v", e.name, s)
		}
		_, rep := w.read(base + "." + e.name)
		if !rep.Complete() {
			t.Fatalf("topic %s: %+v", e.name, rep)
		}
	}
	bad := sums[base+".baseline"]
	if msg, _ := bad["error"].(string); bad["result"] != "failed" || !strings.Contains(msg, "SecurityBaselinesAssessment.Read.All") || !strings.Contains(msg, "BaselineComplianceAssessmentExport") {
		t.Fatalf("forbidden export's summary: %v", bad)
	}
	for _, e := range []string{"SoftwareInventoryExport", "CertificateAssessmentExport", "BaselineComplianceAssessmentExport"} {
		if n := w.defender.CallsOf(e); n != 1 {
			t.Fatalf("%s: %d export API calls, want 1", e, n)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := w.finish(p, time.Minute); res.Code != 0 {
		t.Fatalf("serve exit %d after SIGTERM", res.Code)
	}
}

// TestKafkaStreamsKTableOverVulnerabilitiesTable: the Kafka Streams
// application builds its KTable over a vulnerabilities table topic, whose
// keys are the natural keys' compact JSON: through three snapshots (rows
// added, changed, removed) its store holds exactly the snapshot's rows,
// each under its JSON key and in the partition the Java client's
// partitioner picks for that key.
func TestKafkaStreamsKTableOverVulnerabilitiesTable(t *testing.T) {
	const partitions = 4
	w, tableTopic := tableWorld(t, partitions)
	w.mu.Lock()
	w.opts.Export = vulnerabilitiesExport
	w.mu.Unlock()
	w.rig.CreateTopic(t, w.Topic, partitions, nil)
	env := map[string]string{"KAFKA_TABLE_TOPIC": tableTopic, "MDE_EXPORT": vulnerabilitiesExport}
	app := startStreamsApp(t, w.rig, w.Topic, tableTopic, partitions)
	opts := synth.Options{Export: vulnerabilitiesExport, Seed: w.opts.Seed}
	per := synth.RowsPerDevice(vulnerabilitiesExport)

	v1, v2, v3 := map[int]int{}, map[int]int{}, map[int]int{}
	for i := range 25 * per {
		if i < 20*per {
			v1[i] = 1
		}
		v2[i] = 1
		if i%5 == 0 && i < 20*per {
			v2[i] = 2
		}
		if i%per != 0 { // 3: every device's first row fixed (removed)
			v3[i] = v2[i]
		}
	}
	for n, versions := range []map[int]int{v1, v2, v3} {
		e := rows(opts, 3, versions)
		w.publish(e, fmt.Sprintf("2026-11-2%dT10:01:00Z", 4+n))
		mustComplete(t, w.run(env))
		want := e.naturalTable(t, vulnerabilitiesExport)
		app.awaitStore(want, partitions)
		for key := range want {
			var k map[string]any
			if err := json.Unmarshal([]byte(key), &k); err != nil || len(k) != 5 || k["DeviceId"] == nil {
				t.Fatalf("table key %q is not the natural key's JSON object", key)
			}
		}
	}
}

// TestEveryExportEndToEnd: each of the nine exports through the built
// binary, Azurite and the real broker: `run` with MDE_EXPORT (spelled in
// lower case) publishes every record keyed by DeviceId with its natural
// key in mde.key, bracketed by markers (verify.Check), and `verify` with
// the same MDE_EXPORT reads the export's default topic when KAFKA_TOPIC
// is not set.
func TestEveryExportEndToEnd(t *testing.T) {
	for _, e := range schema.Exports() {
		t.Run(e.Name, func(t *testing.T) {
			records := 40 * synth.RowsPerDevice(e.Name)
			w := newWorldFor(t, e.Name, records, 3)
			res := w.run(map[string]string{"MDE_EXPORT": strings.ToLower(e.Name)})
			mustComplete(t, res)
			run := runID(t, res.Stderr)
			msgs, rep := w.read(w.Topic)
			r := rep.Run(run)
			if r == nil || !r.Complete || r.Records != int64(records) {
				t.Fatalf("%s: %+v", e.Name, r)
			}
			for _, m := range msgs {
				if string(m.Key) == schema.MarkerKey {
					continue
				}
				if m.Headers[schema.HeaderExport] != e.Name || (e.ManyPerDevice() != strings.HasPrefix(m.Headers[schema.HeaderKey], "{")) {
					t.Fatalf("record headers %v", m.Headers)
				}
			}
			v := w.runArgs(map[string]string{"MDE_EXPORT": e.Name, "KAFKA_TOPIC": w.Topic}, "verify")
			if v.Code != 0 || !strings.Contains(v.Stdout, w.Topic) {
				t.Fatalf("verify: exit %d\n%s%s", v.Code, v.Stdout, tail(v.Stderr, 10))
			}
		})
	}
}
