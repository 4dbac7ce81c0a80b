package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
)

// world is an in-process Defender API, blob store and Kafka-compatible
// broker serving a small synthetic export: `tvm2kafka run` end to end
// without a network, for the behaviour of the command itself (logs,
// summary, exit status). The real broker is exercised in internal/e2e.
type world struct {
	defender *fakes.Defender
	brokers  string
	gen      string
}

func newWorld(t *testing.T, devices, parts int) *world {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	store := fakes.NewBlobStore()
	t.Cleanup(store.Close)
	opts := synth.Options{Devices: devices, Parts: parts, Seed: 7}
	layout := synth.Plan(opts)
	var urls []string
	for _, p := range layout.Parts {
		var buf bytes.Buffer
		if _, err := synth.WritePart(&buf, opts, p); err != nil {
			t.Fatal(err)
		}
		store.Put(layout.Container, p.Name, buf.Bytes())
		urls = append(urls, store.SASURL(layout.Container, p.Name, time.Now().Add(time.Hour)))
	}
	d := fakes.NewDefender(fakes.DefenderConfig{
		Manifest:  func() ([]string, string) { return urls, layout.GeneratedTime },
		Authorize: func(b string) bool { return b == "world-token-value" },
	})
	t.Cleanup(d.Close)
	return &world{defender: d, brokers: strings.Join(cluster.ListenAddrs(), ","), gen: layout.GeneratedTime}
}

func (w *world) env(extra map[string]string) map[string]string {
	env := map[string]string{
		"MDE_API_URL": w.defender.URL(), "MDE_ACCESS_TOKEN": "world-token-value",
		"KAFKA_BROKERS": w.brokers, "KAFKA_TOPIC": "records", "LOG_LEVEL": "debug", "TVM2KAFKA_WORKERS": "2",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// runCmd runs `tvm2kafka run` with env and returns its exit status, stderr
// and how long it took.
func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, time.Duration) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(context.Background(), append([]string{"run"}, args...), envOf(env), &stdout, &stderr)
	return code, stderr.String(), time.Since(start)
}

// jsonLines parses every line of out, failing on one that is not JSON.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %v\n%s", err, l)
		}
		lines = append(lines, m)
	}
	return lines
}

// summaries returns the `snapshot summary` lines among lines.
func summaries(lines []map[string]any) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l["message"] == "snapshot summary" {
			out = append(out, l)
		}
	}
	return out
}

// Every run ends with exactly one `snapshot summary` line, whatever ends
// it, with the topic, the export's generated_time once known, dry_run and
// the exit status; a configuration error, too, in LOG_FORMAT=json.
func TestEveryRunEndsWithOneSummaryLine(t *testing.T) {
	w := newWorld(t, 300, 2)
	closed := closedPort(t)
	cases := []struct {
		name      string
		env       map[string]string
		code      int
		complete  bool
		generated bool
		dryRun    bool
	}{
		{"complete", nil, exitOK, true, true, false},
		{"dry run", map[string]string{"TVM2KAFKA_DRY_RUN": "true", "KAFKA_BROKERS": ""}, exitOK, false, true, true},
		{"kafka unreachable", map[string]string{"KAFKA_BROKERS": closed}, exitFailed, false, false, false},
		{"api 403", map[string]string{"MDE_ACCESS_TOKEN": "rejected-token"}, exitFailed, false, false, false},
		{"configuration error", map[string]string{"TVM2KAFKA_WORKERS": "zero"}, exitUsage, false, false, false},
		{"configuration error, dry run", map[string]string{"TVM2KAFKA_DRY_RUN": "true", "KAFKA_COMPRESSION": "brotli"}, exitUsage, false, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr, _ := runCmd(t, w.env(tc.env))
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, stderr)
			}
			sums := summaries(jsonLines(t, stderr))
			if len(sums) != 1 {
				t.Fatalf("%d summary lines, want 1:\n%s", len(sums), stderr)
			}
			s := sums[0]
			if s["complete"] != tc.complete || s["dry_run"] != tc.dryRun || s["exit_code"] != float64(tc.code) || s["topic"] != "records" {
				t.Errorf("summary %v: want complete=%v dry_run=%v exit_code=%d topic=records", s, tc.complete, tc.dryRun, tc.code)
			}
			if gen, _ := s["generated_time"].(string); (gen == w.gen) != tc.generated || (!tc.generated && gen != "") {
				t.Errorf("generated_time %q (export's %q), want it known: %v", gen, w.gen, tc.generated)
			}
			if tc.code != exitOK && s["error"] == nil {
				t.Errorf("a failed run's summary has no error: %v", s)
			}
		})
	}
}

// closedPort returns a loopback host:port where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A configuration error in console format stays readable for a person.
func TestConfigurationErrorInConsoleFormat(t *testing.T) {
	code, stderr, _ := runCmd(t, map[string]string{"LOG_FORMAT": "console", "KAFKA_BROKERS": "k:1", "MDE_ACCESS_TOKEN": "t0ken-x", "TVM2KAFKA_WORKERS": "0"})
	if code != exitUsage || !strings.HasPrefix(stderr, "tvm2kafka run: configuration error:\nTVM2KAFKA_WORKERS") || !strings.Contains(stderr, "snapshot summary") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
}

// logFieldRow matches a row of the README's table of log fields: the field
// name in backticks, then its type.
var logFieldRow = regexp.MustCompile("(?m)^\\| `([a-zA-Z_]+)` \\| (string|number|boolean|list of strings|object) \\|")

// Every log field has one JSON type on every line, and the README's table
// of log fields lists it with that type. Durations are numbers of seconds
// everywhere: the summary's duration and the pipeline's agree with the
// wall clock.
func TestLogFieldsHaveOneTypeAndAreDocumented(t *testing.T) {
	readme := testutil.Docs(t, "../..")
	documented := map[string]string{}
	for _, m := range logFieldRow.FindAllStringSubmatch(readme, -1) {
		documented[m[1]] = m[2]
	}

	w := newWorld(t, 2000, 3)
	w.defender.Fail(fakes.Response{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"0"}}})
	var all []map[string]any
	for _, env := range []map[string]string{
		{"LOG_LEVEL": "trace"},
		{"LOG_LEVEL": "trace", "TVM2KAFKA_DRY_RUN": "true", "KAFKA_BROKERS": ""},
		{"TVM2KAFKA_WORKERS": "x"},
		{"KAFKA_BROKERS": closedPort(t)},
	} {
		code, stderr, wall := runCmd(t, w.env(env))
		lines := jsonLines(t, stderr)
		all = append(all, lines...)
		if code != exitOK {
			continue
		}
		var sum, end float64
		for _, l := range lines {
			switch l["message"] {
			case "snapshot summary":
				sum, _ = l["duration"].(float64)
			case "snapshot-end written", "snapshot-end built and discarded (dry run)":
				end, _ = l["duration"].(float64)
			}
		}
		if !(0 < end && end <= sum && sum <= wall.Seconds()) {
			t.Errorf("durations in seconds: pipeline %v ≤ summary %v ≤ wall clock %v", end, sum, wall.Seconds())
		}
	}
	types := map[string]string{}
	for _, l := range all {
		for k, v := range l {
			typ := jsonType(v)
			if prev, ok := types[k]; ok && prev != typ {
				t.Errorf("log field %q is a %s on one line and a %s on another", k, prev, typ)
			}
			types[k] = typ
			if doc, ok := documented[k]; !ok {
				t.Errorf("log field %q (%s) is not in the README's table of log fields", k, typ)
				documented[k] = typ // once
			} else if doc != typ {
				t.Errorf("log field %q is a %s, the README says %s", k, typ, doc)
			}
		}
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case []any:
		return "list of strings"
	case map[string]any:
		return "object"
	case float64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// The dry run says what it does: nothing "written", and a summary that
// does not claim a complete snapshot.
func TestDryRunLogsSayNothingWasPublished(t *testing.T) {
	w := newWorld(t, 300, 2)
	code, stderr, _ := runCmd(t, w.env(map[string]string{"TVM2KAFKA_DRY_RUN": "true", "KAFKA_BROKERS": ""}))
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "written") {
		t.Errorf("a dry run claims to have written something:\n%s", stderr)
	}
	for _, want := range []string{"snapshot-start built and discarded (dry run)", "snapshot-end built and discarded (dry run)", "nothing is published"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("no %q in:\n%s", want, stderr)
		}
	}
	s := summaries(jsonLines(t, stderr))[0]
	if s["complete"] != false || s["dry_run"] != true || s["records"] != float64(300) {
		t.Errorf("dry-run summary: %v", s)
	}
}

// A broker or API host that does not exist fails the run at once (no
// retries), naming the setting to fix, with the summary line.
func TestHostsThatDoNotExistFailAtOnce(t *testing.T) {
	w := newWorld(t, 100, 1)
	noSuchHost := func(_ context.Context, _, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	for _, tc := range []struct {
		name, want string
		env        map[string]string
		kafka      bool // the broker's host, else the API's
	}{
		{"KAFKA_BROKERS", "KAFKA_BROKERS: the broker host kafka-1.example.invalid does not exist", map[string]string{"KAFKA_BROKERS": "kafka-1.example.invalid:9092"}, true},
		{"MDE_API_URL", "MDE_API_URL https://api.securitycentre.microsoft.com: the host api.securitycentre.microsoft.com does not exist", map[string]string{"MDE_API_URL": "https://api.securitycentre.microsoft.com"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := defaultValues()
			for k, v := range w.env(tc.env) {
				raw[k] = v
			}
			cfg, err := parseConfig(raw)
			if err != nil {
				t.Fatal(err)
			}
			env := runEnv{}
			if tc.kafka {
				cfg.kafka.Dial = noSuchHost
			} else {
				env.httpClient = &http.Client{Transport: &http.Transport{DialContext: noSuchHost}}
			}
			var out bytes.Buffer
			start := time.Now()
			code := exitCode(snapshot(context.Background(), cfg, env, newLogger(cfg, &out)))
			if code != exitFailed || time.Since(start) > 10*time.Second {
				t.Fatalf("exit %d after %v:\n%s", code, time.Since(start), out.String())
			}
			if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "retrying") {
				t.Fatalf("no %q, or retries:\n%s", tc.want, out.String())
			}
			if n := len(summaries(jsonLines(t, out.String()))); n != 1 {
				t.Fatalf("%d summary lines", n)
			}
		})
	}
}

// A rejected line's reason names the setting that bounds it as the user
// knows it (KAFKA_MAX_MESSAGE_BYTES), though the pipeline only has a field:
// the declarations' names reach the libraries through the run.
func TestRejectionReasonNamesTheSetting(t *testing.T) {
	w := newWorld(t, 20, 1)
	code, stderr, _ := runCmd(t, w.env(map[string]string{"KAFKA_MAX_MESSAGE_BYTES": "1024"}))
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	rejected := 0
	for _, l := range jsonLines(t, stderr) {
		if l["message"] != "line rejected" {
			continue
		}
		rejected++
		if reason, _ := l["reason"].(string); !strings.Contains(reason, "exceeds KAFKA_MAX_MESSAGE_BYTES (1024)") {
			t.Fatalf("reason %q does not name the setting", reason)
		}
	}
	if rejected != 20 {
		t.Fatalf("%d lines rejected, want every one of the 20 (each is over 1024 bytes)", rejected)
	}
}
