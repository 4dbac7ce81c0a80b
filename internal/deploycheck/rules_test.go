package deploycheck

import (
	"context"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

var rulesFile = filepath.Join(repo, "deploy", "prometheus", "tvm2kafka-rules.yml")

// alertExprs parses the rule file with Prometheus's own parser (unknown
// fields, bad PromQL and bad templates fail) and returns each alert's
// expression on one line.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", rulesFile, errs)
	}
	out := map[string]string{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Fatalf("rule %q is not an alert", r.Record)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s lacks a severity, summary or description", r.Alert)
			}
			out[r.Alert] = strings.Join(strings.Fields(r.Expr), " ")
		}
	}
	return out
}

// TestAlertRules evaluates every alert's expression with Prometheus's
// PromQL engine on the series of healthy and broken tvm2kafka instances:
// each alert fires for the broken instance only, with the expected value.
func TestAlertRules(t *testing.T) {
	exprs := alertExprs(t)
	const day, hour = 86400, 3600
	now := time.Unix(100*day, 0)
	at := func(ago int64) float64 { return float64(now.Unix() - ago) }
	cases := []struct {
		alert  string
		series map[string]float64 // series (name{instance="..."}) → value at now
		fires  map[string]float64 // instance → value of the alert's expression
	}{
		{"Tvm2kafkaExportStale", map[string]float64{
			`tvm2kafka_export_generated_timestamp_seconds{instance="stale"}`:   at(3 * day),
			`tvm2kafka_export_generated_timestamp_seconds{instance="fresh"}`:   at(day),
			`tvm2kafka_export_generated_timestamp_seconds{instance="unknown"}`: 0,
		}, map[string]float64{"stale": 3 * day}},
		{"Tvm2kafkaSnapshotFailed", map[string]float64{
			`tvm2kafka_last_snapshot_failed{instance="failing"}`: 1,
			`tvm2kafka_last_snapshot_failed{instance="ok"}`:      0,
		}, map[string]float64{"failing": 1}},
		{"Tvm2kafkaNoCompleteSnapshot", map[string]float64{
			`tvm2kafka_snapshot_interval_seconds{instance="stuck"}`:                   hour,
			`tvm2kafka_snapshot_interval_seconds{instance="healthy"}`:                 hour,
			`tvm2kafka_snapshot_interval_seconds{instance="starting"}`:                hour,
			`tvm2kafka_snapshot_interval_seconds{instance="daily"}`:                   day,
			`tvm2kafka_last_complete_snapshot_timestamp_seconds{instance="stuck"}`:    at(3 * hour),
			`tvm2kafka_last_complete_snapshot_timestamp_seconds{instance="healthy"}`:  at(hour / 2),
			`tvm2kafka_last_complete_snapshot_timestamp_seconds{instance="starting"}`: 0,
			`tvm2kafka_last_complete_snapshot_timestamp_seconds{instance="daily"}`:    at(3 * hour),
			`process_start_time_seconds{instance="stuck"}`:                            at(10 * day),
			`process_start_time_seconds{instance="healthy"}`:                          at(10 * day),
			`process_start_time_seconds{instance="starting"}`:                         at(hour),
			`process_start_time_seconds{instance="daily"}`:                            at(10 * day),
		}, map[string]float64{"stuck": 3 * hour}},
	}
	for _, c := range cases {
		t.Run(c.alert, func(t *testing.T) {
			expr := exprs[c.alert]
			if expr == "" {
				t.Fatalf("no alert %s in %s", c.alert, rulesFile)
			}
			got := evalInstant(t, expr, now, c.series)
			if len(got) != len(c.fires) {
				t.Fatalf("%s fires for %v, want %v", expr, got, c.fires)
			}
			for inst, v := range c.fires {
				if g, ok := got[inst]; !ok || g != v {
					t.Fatalf("%s: %s = %v (fires %v), want %v", c.alert, inst, g, ok, v)
				}
			}
		})
	}
}

// evalInstant evaluates expr at now over series that hold their value for
// the last 10 minutes, and returns the result by instance.
func evalInstant(t *testing.T, expr string, now time.Time, series map[string]float64) map[string]float64 {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	var all []storage.Series
	for s, v := range series {
		m, err := p.ParseMetric(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		var samples []chunks.Sample
		for ts := now.Add(-10 * time.Minute); !ts.After(now); ts = ts.Add(time.Minute) {
			samples = append(samples, floatSample{t: ts.UnixMilli(), f: v})
		}
		all = append(all, storage.NewListSeries(m, samples))
	}
	q := &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range all {
				if matchesAll(s.Labels(), ms) {
					out = append(out, s)
				}
			}
			sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
			return &seriesSet{series: out}
		},
	}}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, Parser: p})
	query, err := engine.NewInstantQuery(context.Background(), q, nil, expr, now)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	res := query.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[s.Metric.Get("instance")] = s.F
	}
	return out
}

func matchesAll(l labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

// seriesSet is a storage.SeriesSet over a slice.
type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i <= len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i-1] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// floatSample is a chunks.Sample holding a float.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }
