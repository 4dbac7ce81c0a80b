//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// verify runs `tvm2kafka verify args...` against the world's topic with
// the Kafka settings only: no Azure credential, no proxy.
func (w *world) verify(extra map[string]string, args ...string) result {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"), "GORACE": "halt_on_error=1",
		"KAFKA_BROKERS": w.rig.BrokerList(), "KAFKA_TOPIC": w.Topic, "LOG_LEVEL": "debug",
	}
	for k, v := range extra {
		env[k] = v
	}
	cmd := exec.CommandContext(ctx, binPath, append([]string{"verify"}, args...)...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	res := result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(began)}
	if err != nil && res.Code <= 0 {
		w.t.Fatalf("tvm2kafka verify did not run: %v\n%s", err, res.Stderr)
	}
	return res
}

// verifyJSON is the object `verify --output json` prints.
type verifyJSON struct {
	Complete      bool    `json:"complete"`
	RunID         *string `json:"runId"`
	GeneratedTime *string `json:"generatedTime"`
	Records       int64   `json:"records"`
	Partitions    []struct {
		Partition        int     `json:"partition"`
		RunID            *string `json:"runId"`
		Start            bool    `json:"start"`
		End              bool    `json:"end"`
		Records          int64   `json:"records"`
		PartitionRecords *int64  `json:"partitionRecords"`
	} `json:"partitions"`
}

// decodeVerify decodes verify's JSON output strictly: exactly the fields
// of the README, nothing else on stdout.
func decodeVerify(t *testing.T, res result) verifyJSON {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(res.Stdout))
	dec.DisallowUnknownFields()
	var v verifyJSON
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("verify --output json: %v\n%s", err, res.Stdout)
	}
	if dec.More() {
		t.Fatalf("more than one JSON object on stdout:\n%s", res.Stdout)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(res.Stdout), &raw); err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"complete", "generatedTime", "partitions", "records", "runId"}) {
		t.Fatalf("verify JSON fields %v", keys)
	}
	return v
}

// TestVerifyCompleteIncompleteJSONAndMaxAge: verify on a complete
// snapshot (text, JSON, over SASL_SSL), with --max-age on both sides of
// the snapshot's age, during a run that hangs, after an aborted run, and
// on topics without snapshot.
func TestVerifyCompleteIncompleteJSONAndMaxAge(t *testing.T) {
	w := newWorld(t, 1500, 3)
	w.regenerate(synth.Options{Devices: 1500, Parts: 3, Seed: w.opts.Seed, GeneratedTime: time.Now().Add(-3 * time.Hour)})
	res := w.run(nil)
	mustComplete(t, res)
	run := runID(t, res.Stderr)

	v := w.verify(nil)
	if v.Code != 0 || !strings.Contains(v.Stdout, "snapshot COMPLETE") || strings.Count(v.Stdout, run) < 7 {
		t.Fatalf("verify: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
	}
	for _, col := range []string{"partition", "run id", "snapshot-start", "snapshot-end", "records", "partitionRecords"} {
		if !strings.Contains(v.Stdout, col) {
			t.Fatalf("verify table lacks column %q:\n%s", col, v.Stdout)
		}
	}
	j := w.verify(nil, "--output", "json")
	got := decodeVerify(t, j)
	if j.Code != 0 || !got.Complete || *got.RunID != run || *got.GeneratedTime != w.gen || got.Records != 1500 || len(got.Partitions) != 6 {
		t.Fatalf("verify JSON: exit %d %+v", j.Code, got)
	}
	sum := int64(0)
	for i, p := range got.Partitions {
		if p.Partition != i || *p.RunID != run || !p.Start || !p.End || p.PartitionRecords == nil || *p.PartitionRecords != p.Records {
			t.Fatalf("partition %+v", p)
		}
		sum += p.Records
	}
	if sum != 1500 {
		t.Fatalf("partitions hold %d records", sum)
	}

	// --max-age: the snapshot is 3 hours old.
	if v := w.verify(nil, "--max-age", "4h"); v.Code != 0 {
		t.Fatalf("--max-age 4h: exit %d\n%s", v.Code, v.Stdout)
	}
	v = w.verify(nil, "--max-age", "2h", "--output", "json")
	if got := decodeVerify(t, v); v.Code != 1 || !got.Complete || !strings.Contains(v.Stderr, "older than --max-age") {
		t.Fatalf("--max-age 2h: exit %d, %+v\n%s", v.Code, got, v.Stderr)
	}

	// The same over SASL_SSL with SCRAM-SHA-512: the password never shows.
	v = w.verify(map[string]string{
		"KAFKA_BROKERS": w.rig.SASLBrokerList(), "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME": w.rig.ScramUser, "KAFKA_SASL_PASSWORD": w.rig.ScramPassword, "KAFKA_TLS_CA_FILE": w.rig.CAFile,
	})
	if v.Code != 0 || strings.Contains(v.Stdout+v.Stderr, w.rig.ScramPassword) {
		t.Fatalf("verify over SASL_SSL: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
	}

	// A run that hangs in one part: its snapshot has no end yet.
	hold, release := held(t)
	w.blobProx.Inject(partName(w, 1), fakes.Fault{Hold: hold})
	p := w.start(map[string]string{"TVM2KAFKA_FORCE": "true"}) // the same export again
	testutil.Poll(t, time.Minute, "the hanging part", func() bool { return w.blobProx.Held() == 1 })
	testutil.Poll(t, time.Minute, "the new run's snapshot-start", func() bool {
		v = w.verify(nil, "--output", "json")
		got := decodeVerify(t, v)
		return got.RunID != nil && *got.RunID != run
	})
	if got := decodeVerify(t, v); v.Code != 1 || got.Complete || !strings.Contains(v.Stderr, "without snapshot-end") {
		t.Fatalf("verify during a run: exit %d %+v\n%s", v.Code, got, v.Stderr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	release()
	if res := w.finish(p, 40*time.Second); res.Code != 1 {
		t.Fatalf("SIGTERM: exit %d", res.Code)
	}
	// Now aborted.
	v = w.verify(nil)
	if v.Code != 1 || !strings.Contains(v.Stdout, "abort") || !strings.Contains(v.Stdout, "INCOMPLETE") {
		t.Fatalf("verify after an aborted run: exit %d\n%s", v.Code, v.Stdout)
	}
	// A new complete snapshot makes it pass again.
	mustComplete(t, w.run(nil))
	if v := w.verify(nil); v.Code != 0 {
		t.Fatalf("verify after a new complete run: exit %d\n%s", v.Code, v.Stdout)
	}

	// No snapshot: an empty topic, a missing topic.
	empty := w.rig.NewTopic(t, 2)
	for _, topic := range []string{empty, empty + "-missing"} {
		v := w.verify(map[string]string{"KAFKA_TOPIC": topic})
		if v.Code != 1 || !strings.Contains(v.Stdout+v.Stderr, "no snapshot") {
			t.Fatalf("verify on %s: exit %d\n%s%s", topic, v.Code, v.Stdout, v.Stderr)
		}
	}
}

// TestVerifyReadsAboutOneSnapshot: on a topic holding ten snapshots, verify
// reads from the newest snapshot-start of each partition, about one
// snapshot's messages. VERIFY_SNAPSHOT_DEVICES sets the snapshot size
// (default 1000; the README's figure is for 100000).
func TestVerifyReadsAboutOneSnapshot(t *testing.T) {
	devices := 1000
	if s := os.Getenv("VERIFY_SNAPSHOT_DEVICES"); s != "" {
		devices, _ = strconv.Atoi(s)
	}
	w := newWorld(t, devices, 4)
	for i := range 10 {
		w.regenerate(synth.Options{Devices: devices, Parts: 4, Seed: w.opts.Seed + int64(i),
			GeneratedTime: synth.DefaultGeneratedTime().Add(time.Duration(i) * time.Hour)})
		mustComplete(t, w.run(map[string]string{"LOG_LEVEL": "info"}))
	}
	total := int64(0)
	for _, e := range w.endOffsets(w.rig.Admin(t)) {
		total += e
	}
	v := w.verify(nil, "--output", "json")
	got := decodeVerify(t, v)
	if v.Code != 0 || !got.Complete || got.Records != int64(devices) {
		t.Fatalf("verify: exit %d %+v\n%s", v.Code, got, v.Stderr)
	}
	read := logLine(v.Stderr, "verify read")
	if read == nil {
		t.Fatalf("no 'verify read' line:\n%s", v.Stderr)
	}
	messages := int64(read["messages_read"].(float64))
	snapshot := int64(devices + 2*6)
	// The probes of the newest message and of the snapshot-start fetch
	// whole record batches: at most a few hundred messages per partition.
	if messages < snapshot || messages > snapshot+int64(6*2*400) {
		t.Fatalf("verify read %d messages of %d for a snapshot of %d", messages, total, snapshot)
	}
	t.Logf("topic of 10 snapshots of %d devices (%d messages): verify read %d messages (%.2f snapshots), %v bytes, %v fetches, in %v ms",
		devices, total, messages, float64(messages)/float64(snapshot), read["bytes_read"], read["fetches"], read["duration"])
	fmt.Fprintf(os.Stderr, "verify figures: snapshot %d, topic %d, read %d, took %v\n", snapshot, total, messages, v.Elapsed)
}
