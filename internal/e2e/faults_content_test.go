//go:build integration

package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/verify"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Content and Kafka faults (README "Failure handling"), against the built binary.

// fcLine is one physical line of a hand-made part file.
type fcLine struct {
	text string // without terminator
	term string // "\n", "\r\n" or "" (last line)
	key  string // DeviceId of a good line; "" for a rejected or blank line
	// leak is a string only inside this line: it must never reach the logs.
	leak string
	// tooLong: rejected for its size; its DLQ value is empty.
	tooLong bool
}

// fcPart is a hand-made part: name and lines, plus a leading BOM.
type fcPart struct {
	name  string
	bom   bool
	lines []fcLine
}

func (p fcPart) content() []byte {
	var b bytes.Buffer
	if p.bom {
		b.WriteString("\xEF\xBB\xBF")
	}
	for _, l := range p.lines {
		b.WriteString(l.text)
		b.WriteString(l.term)
	}
	return b.Bytes()
}

func (p fcPart) rejected() int {
	n := 0
	for _, l := range p.lines {
		if l.key == "" && strings.TrimSpace(l.text) != "" {
			n++
		}
	}
	return n
}

func fcGzip(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fcID is a DeviceId like Defender's: 40 hex characters.
func fcID(seed string, i int) string {
	s := sha1.Sum([]byte(fmt.Sprintf("%s/%d", seed, i)))
	return hex.EncodeToString(s[:])
}

// fcRecord is a plausible InfoGathering line of about 300 bytes.
func fcRecord(id string, i int) string {
	return fmt.Sprintf(`{"DeviceId":"%s","DeviceName":"host-%05d.contoso.local","OsPlatform":"Windows11","OsVersion":"10.0.22631","RbacGroupId":0,`+
		`"Timestamp":"2026-11-27 10:01:00.000","AvMode":"0","AvSignatureVersion":"1.421.%d.0","EbpfStatus":null,"Tags":["fc","%d"]}`, id, i, i, i)
}

// fcGoodLines returns n record lines of seed with "\n" terminators.
func fcGoodLines(seed string, n int) []fcLine {
	out := make([]fcLine, n)
	for i := range out {
		id := fcID(seed, i)
		out[i] = fcLine{text: fcRecord(id, i), term: "\n", key: id}
	}
	return out
}

// fcWant is where a good line must end up.
type fcWant struct {
	value      string
	part, line string
}

// fcExpected maps the DeviceIds of the good lines of parts to their line,
// mde.part (parts counted in the world's manifest order) and mde.line.
func fcExpected(t *testing.T, w *world, parts ...fcPart) map[string]fcWant {
	t.Helper()
	out := map[string]fcWant{}
	for _, p := range parts {
		idx := fcPartIndex(t, w, p.name)
		for i, l := range p.lines {
			if l.key != "" {
				out[l.key] = fcWant{value: l.text, part: idx, line: fmt.Sprint(i + 1)}
			}
		}
	}
	return out
}

// fcPartIndex is the mde.part of the blob name in the world's manifest.
func fcPartIndex(t *testing.T, w *world, name string) string {
	t.Helper()
	for i, path := range schemaParts(w) {
		if unescaped, err := url.PathUnescape(path); err == nil && strings.HasSuffix(unescaped, "/"+name) {
			return fmt.Sprint(i)
		}
	}
	t.Fatalf("part %s not in the manifest", name)
	return ""
}

// fcCheckRecords checks that the run's records in msgs are exactly want,
// each once, byte for byte, with its mde.part and mde.line.
func fcCheckRecords(t *testing.T, msgs []verify.Message, runID string, want map[string]fcWant) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.Headers[schema.HeaderRunID] != runID || string(m.Key) == schema.MarkerKey {
			continue
		}
		k := string(m.Key)
		exp, ok := want[k]
		switch {
		case !ok:
			t.Fatalf("unexpected record (part %s line %s) key %.60q value %.80q", m.Headers[schema.HeaderPart], m.Headers[schema.HeaderLine], k, m.Value)
		case seen[k]:
			t.Fatalf("record %s published twice", k)
		case string(m.Value) != exp.value:
			t.Fatalf("record %s: value differs from its line\n got %.120q\nwant %.120q", k, m.Value, exp.value)
		case m.Headers[schema.HeaderPart] != exp.part || m.Headers[schema.HeaderLine] != exp.line:
			t.Fatalf("record %s: mde.part %s mde.line %s, want %s and %s", k,
				m.Headers[schema.HeaderPart], m.Headers[schema.HeaderLine], exp.part, exp.line)
		}
		seen[k] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("%d of %d good records in the topic", len(seen), len(want))
	}
}

// fcErrorLines returns the error-level JSON log lines of stderr.
func fcErrorLines(stderr string) []string {
	var out []string
	for _, line := range strings.Split(stderr, "\n") {
		if strings.Contains(line, `"level":"error"`) {
			out = append(out, line)
		}
	}
	return out
}

// fcRunBinary runs `bin run` against w, like w.run.
func fcRunBinary(t *testing.T, w *world, bin string, extra map[string]string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run")
	cmd.Env = w.env(extra)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	res := result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(began)}
	if err != nil && res.Code <= 0 {
		t.Fatalf("tvm2kafka did not run: %v\n%s", err, res.Stderr)
	}
	w.assertNoSecrets(res.Stdout + res.Stderr)
	if res.Code != 0 {
		t.Fatalf("exit %d\n%s", res.Code, tail(res.Stderr, 40))
	}
	return res
}

// fcPeakRSS is the peak_rss_mb of a run's summary.
func fcPeakRSS(t *testing.T, res result) float64 {
	t.Helper()
	rss, ok := summaryOf(t, res.Stderr)["peak_rss_mb"].(float64)
	if !ok || rss <= 0 {
		t.Fatalf("no peak_rss_mb in the summary")
	}
	return rss
}

// fcDropTopic deletes a topic the binary created when the test ends.
func fcDropTopic(t *testing.T, w *world, topic string) {
	t.Cleanup(func() { w.rig.DeleteTopic(t, topic) })
}

// TestFaultUndecodablePartAbortsTheRun: a part that is not a complete,
// valid gzip stream fails the run at once (no retries until the deadline):
// exit 1, snapshot-abort on every partition after snapshot-start, a
// reason and an error log naming the part's blob path, never its SAS.
func TestFaultUndecodablePartAbortsTheRun(t *testing.T) {
	good := fcPart{name: "fc/part-00000-good.c000.json.gz", lines: fcGoodLines("undecodable-good", 300)}
	whole := fcGzip(t, fcPart{lines: fcGoodLines("undecodable-bad", 3000)}.content())
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	garbage[0] = 0x07 // BFINAL=1, BTYPE=11: a reserved deflate block type
	cases := []struct {
		name string
		body []byte
	}{
		// A valid gzip header (magic, deflate, no flags) then garbage.
		{"corrupt-gzip", append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, garbage...)},
		// The first half of a real part: the whole blob downloads fine
		// but the gzip stream ends early.
		{"truncated-gzip", whole[:len(whole)/2]},
		{"not-gzip", []byte(fcRecord(fcID("plain", 0), 0) + "\n" + fcRecord(fcID("plain", 1), 1) + "\n")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			badName := "fc/part-00001-" + c.name + ".c000.json.gz"
			w := newWorldWithBlobs(t, map[string][]byte{
				good.name: fcGzip(t, good.content()),
				badName:   c.body,
			})
			fcDropTopic(t, w, w.Topic)
			res := w.run(nil)
			if res.Code != 1 {
				t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 30))
			}
			if res.Elapsed > 60*time.Second {
				t.Fatalf("took %v: an undecodable part must not be retried until the deadline", res.Elapsed)
			}
			msgs, rep := w.read(w.Topic)
			if len(rep.Runs) != 1 {
				t.Fatalf("%d runs in the topic, want 1", len(rep.Runs))
			}
			run := rep.Runs[0]
			if run.Started != rep.Partitions || run.Aborted != rep.Partitions || run.Ended != 0 || len(run.Problems) != 0 {
				t.Fatalf("started %d aborted %d ended %d of %d partitions, problems %v",
					run.Started, run.Aborted, run.Ended, rep.Partitions, run.Problems)
			}
			// snapshot-abort is the run's last message in every partition.
			last := map[int32]verify.Message{}
			for _, m := range msgs {
				if l, ok := last[m.Partition]; !ok || m.Offset > l.Offset {
					last[m.Partition] = m
				}
			}
			for p, m := range last {
				if m.Headers[schema.HeaderMarker] != string(schema.MarkerAbort) {
					t.Fatalf("partition %d ends with %q, want snapshot-abort", p, m.Headers[schema.HeaderMarker])
				}
			}
			badPath := schemaParts(w)[1] // the blob URL without its query
			if !strings.HasSuffix(badPath, strings.ReplaceAll(badName, "/", "%2F")) {
				t.Fatalf("part 1 is %s", badPath)
			}
			if !strings.Contains(run.Reason, badPath) || !strings.Contains(run.Reason, "gzip") {
				t.Fatalf("abort reason does not name %s and gzip: %q", badPath, run.Reason)
			}
			named := false
			for _, line := range fcErrorLines(res.Stderr) {
				named = named || strings.Contains(line, badPath)
			}
			if !named {
				t.Fatalf("no error log names %s:\n%s", badPath, tail(res.Stderr, 20))
			}
			if strings.Contains(run.Reason, "sig=") || strings.Contains(run.Reason, "?") {
				t.Fatalf("abort reason holds a query string: %q", run.Reason)
			}
		})
	}
}

// TestFaultBadLinesAreRejectedAndCounted: every kind of bad line in
// otherwise valid parts is rejected — not published, counted in
// snapshot-end's rejected, in the DLQ (raw line, or empty when too large)
// with mde.part, mde.line, mde.error — and logged by position only; the
// good lines around them (BOM, CRLF, blank lines, a last line without
// newline, unknown columns) are published byte for byte with the right
// mde.line; a 50 MB line without newline keeps memory bounded.
func TestFaultBadLinesAreRejectedAndCounted(t *testing.T) {
	const maxMsg = 4096
	id := func(i int) string { return fcID("badlines", i) }
	a := fcPart{name: "fc/part-00000-mixed.c000.json.gz", bom: true, lines: []fcLine{
		{text: fcRecord(id(1), 1), term: "\n", key: id(1)},   // 1: after the BOM
		{text: fcRecord(id(2), 2), term: "\r\n", key: id(2)}, // 2: CRLF
		{text: "", term: "\n"},                               // 3: blank
		{text: `{"DeviceId":"` + id(3) + `","DeviceName":"zzLEAK-INVALIDJSONzz"`, term: "\n", leak: "zzLEAK-INVALIDJSONzz"},
		{text: `["zzLEAK-ARRAYzz",{"DeviceId":"` + id(4) + `"}]`, term: "\r\n", leak: "zzLEAK-ARRAYzz"},
		{text: `"zzLEAK-SCALARzz"`, term: "\n", leak: "zzLEAK-SCALARzz"},
		{text: `{"DeviceName":"zzLEAK-MISSINGzz"}`, term: "\n", leak: "zzLEAK-MISSINGzz"},
		{text: `{"DeviceId":"","DeviceName":"zzLEAK-EMPTYzz"}`, term: "\n", leak: "zzLEAK-EMPTYzz"},
		{text: `{"DeviceId":4242,"DeviceName":"zzLEAK-NONSTRINGzz"}`, term: "\n", leak: "zzLEAK-NONSTRINGzz"},
		{text: `{"DeviceId":"mde.snapshot","DeviceName":"zzLEAK-RESERVEDzz"}`, term: "\n", leak: "zzLEAK-RESERVEDzz"},
		{text: " \t \r", term: "\r\n"}, // 11: blank with CRLF
		// 12: unknown columns, odd spacing, escapes and non-ASCII: kept untouched.
		{text: `{ "DeviceId" : "` + id(12) + `" , "FutureColumn" : {"nested":[1,2.5e3,{"a":null}],"t":true} , "Ünïcode":"✓ \u00e9 \"q\" \\" }`, term: "\r\n", key: id(12)},
		{text: `{"DeviceId":"` + id(13) + `","Pad":"zzLEAK-TOOLONGzz ` + strings.Repeat("x", 10<<10) + `"}`, term: "\n", leak: "zzLEAK-TOOLONGzz", tooLong: true},
		// 14: a good line close to the limit.
		{text: `{"DeviceId":"` + id(14) + `","Pad":"` + strings.Repeat("y", 3000) + `"}`, term: "\n", key: id(14)},
		{text: fcRecord(id(15), 15), term: "", key: id(15)}, // 15: no newline at the end
	}}
	huge := `{"DeviceId":"` + id(99) + `","Blob":"zzLEAK-HUGEzz ` + strings.Repeat("A", 50<<20) + `"}`
	b := fcPart{name: "fc/part-00001-huge.c000.json.gz", lines: []fcLine{
		{text: fcRecord(id(20), 20), term: "\n", key: id(20)},
		{text: fcRecord(id(21), 21), term: "\n", key: id(21)},
		{text: huge, term: "", leak: "zzLEAK-HUGEzz", tooLong: true},
	}}
	w := newWorldWithBlobs(t, map[string][]byte{
		a.name: fcGzip(t, a.content()),
		b.name: fcGzip(t, b.content()),
	})
	want := fcExpected(t, w, a, b)
	rejected := a.rejected() + b.rejected()
	if len(want) != 7 || rejected != 9 {
		t.Fatalf("test data: %d good, %d bad lines", len(want), rejected)
	}
	leaks := []string{}
	for _, p := range []fcPart{a, b} {
		for _, l := range p.lines {
			if l.leak != "" {
				leaks = append(leaks, l.leak)
			}
		}
	}

	check := func(t *testing.T, topic string, env map[string]string) (result, string) {
		t.Helper()
		fcDropTopic(t, w, topic)
		env["KAFKA_TOPIC"] = topic
		env["KAFKA_MAX_MESSAGE_BYTES"] = fmt.Sprint(maxMsg)
		res := w.run(env)
		if res.Code != 0 {
			t.Fatalf("exit %d\n%s", res.Code, tail(res.Stderr, 40))
		}
		for _, s := range leaks {
			if strings.Contains(res.Stdout+res.Stderr, s) {
				t.Errorf("the logs quote the content of a rejected line (%s)", s)
			}
		}
		sum := summaryOf(t, res.Stderr)
		if sum["records"] != float64(len(want)) || sum["rejected"] != float64(rejected) {
			t.Fatalf("summary records %v rejected %v, want %d and %d", sum["records"], sum["rejected"], len(want), rejected)
		}
		rid := runID(t, res.Stderr)
		msgs, rep := w.read(topic)
		run := rep.Run(rid)
		if run == nil || !run.Complete || len(rep.Runs) != 1 {
			t.Fatalf("run not complete: %+v", run)
		}
		if run.EndRejected != int64(rejected) || run.EndRecords != int64(len(want)) {
			t.Fatalf("snapshot-end says %d records %d rejected, want %d and %d", run.EndRecords, run.EndRejected, len(want), rejected)
		}
		for _, m := range msgs {
			for _, s := range leaks {
				if bytes.Contains(m.Value, []byte(s)) {
					t.Fatalf("a rejected line (%s) is in the topic", s)
				}
			}
		}
		fcCheckRecords(t, msgs, rid, want)
		return res, rid
	}

	// Memory: the 50 MB line is dropped as it is read. Measured on a
	// binary built without -race (the race detector alone adds ~130 MB),
	// against a control run of the same export without that line.
	t.Run("memory-bounded", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "tvm2kafka")
		build := exec.Command("go", "build", "-o", bin, "github.com/tvm2kafka/tvm2kafka/cmd/tvm2kafka")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		env := map[string]string{"KAFKA_MAX_MESSAGE_BYTES": fmt.Sprint(maxMsg), "KAFKA_TOPIC": w.Topic + "-mem"}
		fcDropTopic(t, w, env["KAFKA_TOPIC"])
		withLine := fcPeakRSS(t, fcRunBinary(t, w, bin, env))
		control := b
		control.lines = b.lines[:len(b.lines)-1]
		cw := newWorldWithBlobs(t, map[string][]byte{a.name: fcGzip(t, a.content()), b.name: fcGzip(t, control.content())})
		env["KAFKA_TOPIC"] = cw.Topic
		fcDropTopic(t, cw, cw.Topic)
		without := fcPeakRSS(t, fcRunBinary(t, cw, bin, env))
		t.Logf("peak RSS %.1f MB with the 50 MB line, %.1f MB without", withLine, without)
		if withLine >= 150 || withLine-without > 20 {
			t.Fatalf("peak RSS %.1f MB with a 50 MB line, %.1f MB without: want < 150 MB and < 20 MB more", withLine, without)
		}
	})

	t.Run("without-dlq", func(t *testing.T) {
		check(t, w.Topic, map[string]string{})
	})

	t.Run("with-dlq", func(t *testing.T) {
		topic, dlq := w.Topic+"-2", w.Topic+"-2.dlq"
		fcDropTopic(t, w, dlq)
		_, rid := check(t, topic, map[string]string{"KAFKA_DLQ_TOPIC": dlq})
		msgs, _ := w.read(dlq)
		type pos struct{ part, line string }
		wantDLQ := map[pos]fcLine{}
		for _, p := range []fcPart{a, b} {
			idx := fcPartIndex(t, w, p.name)
			for i, l := range p.lines {
				if l.key == "" && strings.TrimSpace(l.text) != "" {
					wantDLQ[pos{idx, fmt.Sprint(i + 1)}] = l
				}
			}
		}
		if len(msgs) != len(wantDLQ) {
			t.Fatalf("%d messages in the DLQ, want %d", len(msgs), len(wantDLQ))
		}
		for _, m := range msgs {
			at := pos{m.Headers[schema.HeaderPart], m.Headers[schema.HeaderLine]}
			l, ok := wantDLQ[at]
			if !ok {
				t.Fatalf("DLQ message for part %s line %s: not a rejected line (or twice)", at.part, at.line)
			}
			delete(wantDLQ, at)
			if m.Headers[schema.HeaderRunID] != rid || m.Headers[schema.HeaderError] == "" {
				t.Fatalf("DLQ message at %v: headers %v", at, m.Headers)
			}
			if strings.Contains(m.Headers[schema.HeaderError], l.leak) {
				t.Fatalf("mde.error quotes the line: %q", m.Headers[schema.HeaderError])
			}
			wantValue := l.text
			if l.tooLong {
				wantValue = ""
			}
			if string(m.Value) != wantValue {
				t.Fatalf("DLQ value at %v is %.80q, want the raw line %.80q", at, m.Value, wantValue)
			}
		}
	})
}

// TestFaultKafkaUnreachableAtStart: with no usable broker the run fails
// with exit 1 in bounded time, with an error naming Kafka and the broker,
// before any export API call (one of the 20 calls an hour is not wasted).
// A closed port is refused at once (~50 ms); a broker that accepts
// connections but never answers fails after the producer's 10 s dial
// timeout (kafka-go's connection handshake), and in any case within the
// 45 s the run gives the topic check (cmd/tvm2kafka/run.go).
func TestFaultKafkaUnreachableAtStart(t *testing.T) {
	cases := []struct {
		name  string
		serve func(net.Listener) // nil: the port is closed
	}{
		{"connection-refused", nil},
		{"silent-broker", func(l net.Listener) {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { // read requests, never answer
					defer c.Close()
					_, _ = io.Copy(io.Discard, c)
				}()
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 50, 1)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			if c.serve == nil {
				l.Close()
			} else {
				t.Cleanup(func() { l.Close() })
				go c.serve(l)
			}
			res := w.run(map[string]string{"KAFKA_BROKERS": addr})
			if res.Code != 1 {
				t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 30))
			}
			if res.Elapsed > 90*time.Second {
				t.Fatalf("took %v", res.Elapsed)
			}
			t.Logf("failed after %v", res.Elapsed.Round(time.Millisecond))
			named := false
			for _, line := range fcErrorLines(res.Stderr) {
				named = named || (strings.Contains(strings.ToLower(line), "kafka") && strings.Contains(line, addr))
			}
			if !named {
				t.Fatalf("no error log naming Kafka and %s:\n%s", addr, tail(res.Stderr, 20))
			}
			if n := len(w.defender.Calls()); n != 0 {
				t.Fatalf("%d export API calls, want none before Kafka is reachable", n)
			}
			if n := w.blobProx.Requests(); n != 0 {
				t.Fatalf("%d blob requests", n)
			}
		})
	}
}

// TestFaultTopicCreationRefused: a missing topic the broker refuses to
// create (replication factor 3 on one broker) fails the run with exit 1
// and an error naming the topic and the setting, before any export API
// call; no topic is left behind.
func TestFaultTopicCreationRefused(t *testing.T) {
	w := newWorld(t, 50, 1)
	fcDropTopic(t, w, w.Topic)
	res := w.run(map[string]string{"KAFKA_TOPIC_REPLICATION_FACTOR": "3"})
	if res.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 30))
	}
	named := false
	for _, line := range fcErrorLines(res.Stderr) {
		named = named || (strings.Contains(line, `\"`+w.Topic+`\"`) || strings.Contains(line, w.Topic)) &&
			strings.Contains(line, "KAFKA_TOPIC_REPLICATION_FACTOR")
	}
	if !named {
		t.Fatalf("no error log naming the topic %s and KAFKA_TOPIC_REPLICATION_FACTOR:\n%s", w.Topic, tail(res.Stderr, 20))
	}
	if n := len(w.defender.Calls()); n != 0 {
		t.Fatalf("%d export API calls, want none", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := w.rig.Admin(t).ListTopics(ctx, w.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has(w.Topic) {
		t.Fatalf("topic %s exists", w.Topic)
	}
}

// TestFaultBrokerRefusesOneRecordAsTooLarge: a record under
// KAFKA_MAX_MESSAGE_BYTES but over the topic's max.message.bytes is
// refused by the broker with MESSAGE_TOO_LARGE: only that record is
// rejected (counted, in the DLQ with its position and error), every other
// record of its batch is published, and the run completes.
func TestFaultBrokerRefusesOneRecordAsTooLarge(t *testing.T) {
	lines := fcGoodLines("toolarge", 80)
	// About 6 KB of random base64: no compression brings it under 3000.
	rnd := make([]byte, 4500)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range rnd {
		rnd[i] = byte(rng.UintN(256))
	}
	bigID := fcID("toolarge", 1000)
	const bigLine = 41
	lines[bigLine-1] = fcLine{text: `{"DeviceId":"` + bigID + `","Blob":"` + base64.StdEncoding.EncodeToString(rnd) + `"}`, term: "\n", tooLong: true}
	p := fcPart{name: "fc/part-00000-toolarge.c000.json.gz", lines: lines}
	w := newWorldWithBlobs(t, map[string][]byte{p.name: fcGzip(t, p.content())})
	maxBytes := "3000"
	w.rig.CreateTopic(t, w.Topic, 6, map[string]*string{"max.message.bytes": &maxBytes})
	dlq := w.Topic + ".dlq"
	fcDropTopic(t, w, dlq)
	res := w.run(map[string]string{"KAFKA_DLQ_TOPIC": dlq})
	if res.Code != 0 {
		t.Fatalf("exit %d\n%s", res.Code, tail(res.Stderr, 40))
	}
	rid := runID(t, res.Stderr)
	msgs, rep := w.read(w.Topic)
	run := rep.Run(rid)
	if run == nil || !run.Complete {
		t.Fatalf("run not complete: %+v", run)
	}
	want := fcExpected(t, w, p)
	if run.EndRejected != 1 || run.EndRecords != int64(len(want)) || len(want) != 79 {
		t.Fatalf("snapshot-end: %d records %d rejected, want %d and 1", run.EndRecords, run.EndRejected, len(want))
	}
	fcCheckRecords(t, msgs, rid, want)
	dmsgs, _ := w.read(dlq)
	if len(dmsgs) != 1 {
		t.Fatalf("%d DLQ messages, want 1", len(dmsgs))
	}
	d := dmsgs[0]
	if d.Headers[schema.HeaderPart] != "0" || d.Headers[schema.HeaderLine] != fmt.Sprint(bigLine) ||
		!strings.Contains(d.Headers[schema.HeaderError], "MESSAGE_TOO_LARGE") || d.Headers[schema.HeaderRunID] != rid {
		t.Fatalf("DLQ message headers %v", d.Headers)
	}
}

// fcGate stands in front of the blob proxy and holds one blob: while
// closed it answers as for a blob whose copy has not finished (200, empty
// body, x-ms-copy-status: pending), which the binary waits on; once
// opened it forwards.
type fcGate struct {
	srv    *httptest.Server
	suffix string

	mu             sync.Mutex
	open           bool
	held, released int
}

func newFCGate(target, suffix string) *fcGate {
	u, err := url.Parse(target)
	if err != nil {
		panic(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil}
	g := &fcGate{suffix: suffix}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, g.suffix) {
			g.mu.Lock()
			open := g.open
			if open {
				g.released++
			} else {
				g.held++
			}
			g.mu.Unlock()
			if !open {
				fakes.CopyPending(w, r)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	return g
}

func (g *fcGate) Open() {
	g.mu.Lock()
	g.open = true
	g.mu.Unlock()
}

func (g *fcGate) counts() (held, released int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held, g.released
}

// TestFaultBrokerRestartMidSnapshot stops the real broker in the middle
// of a snapshot — after snapshot-start and a first part were acknowledged,
// while a second part is held — lets that part be read while the broker is
// down so that its writes fail, then starts the broker again: the run
// completes (exit 0) with every record exactly once, byte for byte, and
// the end markers right. It is the last test of this file, and skipped
// with -short, because it disturbs every other user of the shared broker.
func TestFaultBrokerRestartMidSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("stops the shared broker")
	}
	first := fcPart{name: "fc/part-00000-first.c000.json.gz", lines: fcGoodLines("restart-first", 3000)}
	held := fcPart{name: "fc/part-00001-held.c000.json.gz", lines: fcGoodLines("restart-held", 5000)}
	w := newWorldWithBlobs(t, map[string][]byte{
		first.name: fcGzip(t, first.content()),
		held.name:  fcGzip(t, held.content()),
	})
	fcDropTopic(t, w, w.Topic)
	gate := newFCGate(w.blobProx.URL(), held.name)
	t.Cleanup(gate.srv.Close)
	w.mu.Lock()
	rewritten := 0
	for i, u := range w.urls {
		if path, err := url.PathUnescape(schema.BlobPath(u)); err == nil && strings.HasSuffix(path, "/"+held.name) {
			w.urls[i] = strings.Replace(u, w.blobProx.URL(), gate.srv.URL, 1)
			rewritten++
		}
	}
	w.mu.Unlock()
	if rewritten != 1 {
		t.Fatalf("%d URLs of the held part", rewritten)
	}
	want := fcExpected(t, w, first, held)

	began := time.Now()
	p := w.launch(map[string]string{"TVM2KAFKA_RETRY_MAX_ELAPSED": "6m"}, "run")

	// Mid-snapshot: the held part was asked for (so snapshot-start is
	// acknowledged) and every record of the first part is in the topic.
	adm := w.rig.Admin(t)
	w.pollLive(p, 2*time.Minute, "the first part to be published", func() bool {
		h, _ := gate.counts()
		return h > 0 && w.startedWith(adm, int64(len(first.lines)))
	})

	w.rig.StopKafka(t)
	gate.Open()
	// The held part is read while the broker is down: its writes fail.
	w.pollLive(p, 3*time.Minute, "a failed write while the broker is down", func() bool {
		_, released := gate.counts()
		return released > 0 && strings.Contains(p.stderr.String(), "produce failed; retrying")
	})
	w.rig.StartKafka(t)

	res := w.finish(p, 8*time.Minute-time.Since(began))
	out := res.Stderr
	if res.Code != 0 {
		t.Fatalf("exit %d after the broker restart\n%s", res.Code, tail(out, 40))
	}
	rid := runID(t, out)
	msgs, rep := w.read(w.Topic)
	run := rep.Run(rid)
	if run == nil || !run.Complete || run.Ended != rep.Partitions || run.Aborted != 0 {
		t.Fatalf("run not complete: %+v", run)
	}
	if run.EndRecords != int64(len(want)) || run.EndRejected != 0 {
		t.Fatalf("snapshot-end: %d records %d rejected, want %d and 0", run.EndRecords, run.EndRejected, len(want))
	}
	fcCheckRecords(t, msgs, rid, want)
	assertBracketed(t, msgs, rid, rep.Partitions)
}
