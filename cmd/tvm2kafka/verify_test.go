package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/consumer"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

func TestVerifyConfigErrorsExit2(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no brokers", nil, nil, "KAFKA_BROKERS"},
		{"bad output", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}, []string{"--output", "yaml"}, "--output"},
		{"bad max age", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}, []string{"--max-age", "soon"}, "--max-age"},
		{"negative max age", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}, []string{"--max-age", "-3h"}, "--max-age"},
		{"bad timeout", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}, []string{"--timeout", "0s"}, "--timeout"},
		{"stray argument", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}, []string{"now"}, "unexpected argument"},
		{"run-only flag", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1"}, []string{"--workers", "3"}, "workers"},
		{"bad sasl", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, nil, "KAFKA_SASL_MECHANISM"},
		{"missing CA", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "KAFKA_TLS_CA_FILE": "/nonexistent/ca.pem"}, nil, "KAFKA_TLS_CA_FILE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"verify"}, tc.args...), envOf(tc.env), &stdout, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %s", code, stderr.String(), tc.want)
			}
		})
	}
	// Azure settings are neither needed nor read: a missing secret file is no error.
	opts, code := loadVerifyOptions([]string{"--max-age", "2d"}, envOf(map[string]string{
		"KAFKA_BROKERS": "127.0.0.1:1", "AZURE_CLIENT_SECRET_FILE": "/nonexistent", "MDE_AUTH": "nonsense",
	}), &bytes.Buffer{}, &bytes.Buffer{})
	if opts == nil || code != exitOK || opts.maxAge != 48*time.Hour || opts.kafka.Topic != "mde.infogathering" {
		t.Fatalf("options %+v, exit %d", opts, code)
	}
}

// status builds a consumer.Status: one spec per partition.
type partSpec struct {
	run      string // "" = no snapshot-start
	finish   schema.MarkerKind
	records  int64
	claimed  int64 // partitionRecords of snapshot-end
	total    int64 // records of snapshot-end
	gen      string
	startAge time.Duration
}

func status(now time.Time, specs ...partSpec) *consumer.Status {
	st := &consumer.Status{}
	for p, s := range specs {
		ps := consumer.PartitionStatus{Partition: p, RunID: s.run, Records: s.records}
		if s.run != "" {
			mk := schema.Marker{Kind: schema.MarkerStart, Export: schema.ExportInfoGathering, GeneratedTime: s.gen,
				RunID: s.run, Partition: p, Partitions: len(specs), Parts: 2, Time: now.Add(-s.startAge)}
			ps.Start = &consumer.Marker{Marker: mk}
			if s.finish != "" {
				end := mk
				end.Kind = s.finish
				if s.finish == schema.MarkerEnd {
					claimed, total, zero := s.claimed, s.total, int64(0)
					end.PartitionRecords, end.Records, end.Rejected = &claimed, &total, &zero
				} else {
					end.Reason = "cancelled: SIGTERM"
				}
				ps.Finish = &consumer.Marker{Marker: end}
			}
		}
		st.Partitions = append(st.Partitions, ps)
	}
	return st
}

func TestVerifyReport(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	const gen = "2026-11-28T10:01:00Z"
	end := schema.MarkerEnd
	ok := func(records int64) partSpec {
		return partSpec{run: "r2", finish: end, records: records, claimed: records, total: 30, gen: gen}
	}
	cases := []struct {
		name     string
		st       *consumer.Status
		maxAge   time.Duration
		complete bool
		pass     bool
		problem  string
	}{
		{"complete", status(now, ok(10), ok(20)), 0, true, true, ""},
		{"fresh enough", status(now, ok(10), ok(20)), 3 * time.Hour, true, true, ""},
		{"generated in the future (clock skew)", status(now, partSpec{run: "r2", finish: end, records: 3, claimed: 3, total: 3, gen: "2026-11-28T13:00:00Z"}), time.Hour, true, true, ""},
		{"too old", status(now, ok(10), ok(20)), time.Hour, true, false, "older than --max-age"},
		{"aborted", status(now, ok(10), partSpec{run: "r2", finish: schema.MarkerAbort, records: 20, gen: gen}), 0, false, false, "snapshot-abort"},
		{"still running", status(now, ok(10), partSpec{run: "r2", records: 7, gen: gen}), 0, false, false, "without snapshot-end"},
		{"count differs", status(now, ok(10), partSpec{run: "r2", finish: end, records: 19, claimed: 20, total: 30, gen: gen}), 0, false, false, "19 records of the run, snapshot-end says 20"},
		{"older run in a partition", status(now, ok(10), partSpec{run: "r1", finish: end, records: 20, claimed: 20, total: 30, gen: gen, startAge: time.Hour}), 0, false, false, "belongs to run r1"},
		{"no start in a partition", status(now, ok(10), partSpec{}), 0, false, false, "no snapshot-start"},
		{"no snapshot", status(now, partSpec{}, partSpec{}), 0, false, false, "no snapshot"},
		{"generatedTime not a time", status(now, partSpec{run: "r2", finish: end, records: 3, claimed: 3, total: 3, gen: "yesterday"}), time.Hour, true, false, "not an RFC 3339 time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := newVerifyReport(tc.st, tc.maxAge, now)
			if rep.Complete != tc.complete || rep.ok() != tc.pass {
				t.Fatalf("complete %v ok %v, want %v %v; problems %q", rep.Complete, rep.ok(), tc.complete, tc.pass, rep.problems)
			}
			if tc.problem != "" && !strings.Contains(strings.Join(rep.problems, "\n"), tc.problem) {
				t.Fatalf("problems %q lack %q", rep.problems, tc.problem)
			}
			var text bytes.Buffer
			rep.printText(&text, "mde", tc.st, time.Second)
			want := "INCOMPLETE"
			switch {
			case tc.name == "no snapshot":
				want = "no snapshot"
			case tc.pass:
				want = "snapshot COMPLETE"
			case tc.complete:
				want = "TOO OLD"
			}
			if !strings.Contains(text.String(), want) {
				t.Fatalf("text output lacks %q:\n%s", want, text.String())
			}
		})
	}
}

func TestVerifyJSONHasExactlyTheDocumentedFields(t *testing.T) {
	now := time.Now()
	for _, st := range []*consumer.Status{
		status(now, partSpec{run: "r", finish: schema.MarkerEnd, records: 2, claimed: 2, total: 2, gen: "2026-11-28T10:01:00Z"}, partSpec{run: "r", records: 1}),
		status(now, partSpec{}),
	} {
		b, err := json.Marshal(newVerifyReport(st, 0, now))
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b, &top); err != nil {
			t.Fatal(err)
		}
		if got := keys(top); !reflect.DeepEqual(got, []string{"complete", "generatedTime", "partitions", "records", "runId"}) {
			t.Fatalf("top-level fields %v in %s", got, b)
		}
		var parts []map[string]json.RawMessage
		if err := json.Unmarshal(top["partitions"], &parts); err != nil || len(parts) != len(st.Partitions) {
			t.Fatalf("partitions %s: %v", top["partitions"], err)
		}
		for _, p := range parts {
			if got := keys(p); !reflect.DeepEqual(got, []string{"end", "partition", "partitionRecords", "records", "runId", "start"}) {
				t.Fatalf("partition fields %v in %s", got, b)
			}
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestVerifyReadsTheExportsDefaultTopic: without KAFKA_TOPIC, verify reads
// the default topic of MDE_EXPORT (InfoGathering's when it is not set).
func TestVerifyReadsTheExportsDefaultTopic(t *testing.T) {
	for env, want := range map[string]string{
		"":                              "mde.infogathering",
		"softwarevulnerabilitiesexport": "mde.vulnerabilities",
		"SoftwareInventoryNonCpeExport": "mde.software.noncpe",
	} {
		m := map[string]string{"KAFKA_BROKERS": "localhost:9092"}
		if env != "" {
			m["MDE_EXPORT"] = env
		}
		opts, code := loadVerifyOptions(nil, envOf(m), io.Discard, io.Discard)
		if code != exitOK || opts.kafka.Topic != want {
			t.Errorf("MDE_EXPORT=%q: exit %d, topic %q, want %q", env, code, opts.kafka.Topic, want)
		}
	}
	if _, code := loadVerifyOptions(nil, envOf(map[string]string{"KAFKA_BROKERS": "localhost:9092", "MDE_EXPORT": "Nope"}), io.Discard, io.Discard); code != exitUsage {
		t.Errorf("an unknown export: exit %d, want 2", code)
	}
}
