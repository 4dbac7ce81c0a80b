package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tvm2kafka/tvm2kafka/internal/redact"
	"github.com/tvm2kafka/tvm2kafka/internal/runner"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// metrics are the Prometheus metrics of `tvm2kafka serve` (docs/operations.md,
// "Metrics"), in a registry of their own with the Go and process
// collectors.
type metrics struct {
	reg *prometheus.Registry

	snapshots        *prometheus.CounterVec
	lastComplete     prometheus.Gauge
	exportGenerated  prometheus.Gauge
	recordsPublished prometheus.Counter
	recordsRejected  prometheus.Counter
	duplicateKeys    prometheus.Counter
	valuesUntyped    *prometheus.CounterVec
	apiRequests      *prometheus.CounterVec
	duration         prometheus.Histogram
	lastFailed       prometheus.Gauge
	inProgress       prometheus.Gauge
	interval         prometheus.Gauge
}

func newMetrics(interval time.Duration) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := promauto.With(m.reg)
	gauge := func(name, help string) prometheus.Gauge {
		return f.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m.snapshots = f.NewCounterVec(prometheus.CounterOpts{
		Name: "tvm2kafka_snapshots_total",
		Help: "Runs by result: complete (snapshot-end written), aborted (snapshot-abort written), failed (before any marker), unchanged (the topic already held this export), skipped (another run was publishing).",
	}, []string{"result"})
	for _, r := range runner.Results() {
		m.snapshots.WithLabelValues(string(r))
	}
	m.lastComplete = gauge("tvm2kafka_last_complete_snapshot_timestamp_seconds",
		"Unix time at which a run last left the topic holding a complete snapshot of the latest export: it wrote snapshot-end, or found the export unchanged. 0 until then.")
	m.exportGenerated = gauge("tvm2kafka_export_generated_timestamp_seconds",
		"generatedTime (Unix time) of the newest complete snapshot in the topic, as far as this process knows. 0 until known.")
	m.recordsPublished = counter("tvm2kafka_records_published_total",
		"Record messages published and acknowledged, over all runs.")
	m.recordsRejected = counter("tvm2kafka_records_rejected_total",
		"Lines rejected (not published to the topic; sent to the DLQ when set), over all runs.")
	m.duplicateKeys = counter("tvm2kafka_duplicate_keys_total",
		"Lines whose natural key an earlier line of the same snapshot had (published; the table topic keeps the last), over all runs. Counted with a table topic only.")
	m.valuesUntyped = f.NewCounterVec(prometheus.CounterOpts{
		Name: "tvm2kafka_value_members_untyped_total",
		Help: "Members of records kept without their column's type, by reason: not_json (a column documented as JSON in a string whose string is not JSON, kept as the string), mistyped (avro, json-schema: a value not of its column's type, carried in ExtraMembers). Published either way.",
	}, []string{"reason"})
	m.apiRequests = f.NewCounterVec(prometheus.CounterOpts{
		Name: "tvm2kafka_export_api_requests_total",
		Help: "HTTP requests to the Defender export API by status code (\"error\" when no answer came).",
	}, []string{"code"})
	m.apiRequests.WithLabelValues("200") // present from the start
	m.duration = f.NewHistogram(prometheus.HistogramOpts{
		Name:    "tvm2kafka_snapshot_duration_seconds",
		Help:    "Duration of the runs that published a complete snapshot, from start to the last snapshot-end.",
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
	})
	m.lastFailed = gauge("tvm2kafka_last_snapshot_failed",
		"1 when the last run ended failed or aborted, 0 when it ended complete, unchanged or skipped.")
	m.inProgress = gauge("tvm2kafka_snapshot_in_progress", "The number of runs in progress: 1 while a run is (with MDE_EXPORTS, one per export at most).")
	m.interval = gauge("tvm2kafka_snapshot_interval_seconds", "TVM2KAFKA_INTERVAL: the time between two runs (without jitter).")
	m.interval.Set(interval.Seconds())
	v := currentVersion()
	f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tvm2kafka_build_info",
		Help: "Always 1; the labels tell the version, the Go version and the commit.",
	}, []string{"version", "goversion", "revision"}).WithLabelValues(v.Version, v.GoVersion, v.Revision).Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// exportAnswer counts one answer of the export API.
func (m *metrics) exportAnswer(code string) { m.apiRequests.WithLabelValues(code).Inc() }

// begin marks a run in progress.
func (m *metrics) begin() { m.inProgress.Inc() }

// observe records how a run ended.
func (m *metrics) observe(out runner.Outcome, now time.Time) {
	m.inProgress.Dec()
	m.snapshots.WithLabelValues(string(out.Result)).Inc()
	m.recordsPublished.Add(float64(out.Res.Records))
	m.recordsRejected.Add(float64(out.Res.Rejected))
	m.duplicateKeys.Add(float64(out.DuplicateKeys))
	m.valuesUntyped.WithLabelValues("not_json").Add(float64(out.Res.ValuesNotJSON))
	m.valuesUntyped.WithLabelValues("mistyped").Add(float64(out.Res.ValuesMistyped))
	switch out.Result {
	case runner.Complete:
		m.duration.Observe(out.Duration.Seconds())
		m.lastComplete.Set(float64(now.UnixNano()) / 1e9)
		m.lastFailed.Set(0)
	case runner.Unchanged:
		m.lastComplete.Set(float64(now.UnixNano()) / 1e9)
		m.lastFailed.Set(0)
	case runner.Skipped:
		m.lastFailed.Set(0)
	default:
		m.lastFailed.Set(1)
	}
	if t, ok := parseGeneratedTime(out.TopicGeneratedTime); ok {
		m.exportGenerated.Set(float64(t.UnixNano()) / 1e9)
	}
}

// parseGeneratedTime parses generatedTime as the API writes it (RFC 3339,
// any fraction of a second).
func parseGeneratedTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// readiness is what /readyz answers: ready once the topic holds a
// complete snapshot of the latest export.
type exportReadiness struct {
	mu        sync.Mutex
	runs      int    // runs finished
	latest    string // generatedTime the export API last returned
	topic     string // generatedTime of the newest complete snapshot in the topic
	lastRun   string // result of the last run
	lastError string
}

func (r *exportReadiness) observe(out runner.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs++
	if g := out.Manifest.GeneratedTime; g != "" {
		r.latest = g
	}
	if out.TopicGeneratedTime != "" {
		r.topic = out.TopicGeneratedTime
	}
	r.lastRun, r.lastError = string(out.Result), ""
	if out.Err != nil {
		r.lastError = out.Err.Error()
	}
}

// ready reports readiness and, when not ready, why.
func (r *exportReadiness) ready() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.lastRun
	if r.lastError != "" {
		last += ": " + r.lastError
	}
	switch {
	case r.runs == 0:
		return false, "the first snapshot is in progress"
	case r.latest == "":
		return false, "the export API has not answered yet (last run " + last + ")"
	case r.topic == "":
		return false, fmt.Sprintf("the topic holds no known complete snapshot of the export generated %s (last run %s)", r.latest, last)
	case r.topic != r.latest:
		return false, fmt.Sprintf("the topic's newest complete snapshot is of the export generated %s, the latest export was generated %s (last run %s)", r.topic, r.latest, last)
	}
	return true, "the topic holds a complete snapshot of the export generated " + r.latest
}

// readiness is the readiness of every export serve takes: ready when
// each one is.
type readiness struct {
	names   []string
	exports map[string]*exportReadiness
}

func newReadiness(exports []schema.Export) *readiness {
	r := &readiness{exports: map[string]*exportReadiness{}}
	for _, e := range exports {
		r.names = append(r.names, e.Name)
		r.exports[e.Name] = &exportReadiness{}
	}
	return r
}

// of returns the readiness of one export.
func (r *readiness) of(export string) *exportReadiness { return r.exports[export] }

// observe records a run's outcome (the run's export).
func (r *readiness) observe(out runner.Outcome) {
	if e := r.exports[out.Manifest.Export]; e != nil {
		e.observe(out)
	} else if len(r.names) == 1 {
		r.exports[r.names[0]].observe(out)
	}
}

// ready reports readiness and, when not ready, why; with several exports
// each reason names its export.
func (r *readiness) ready() (bool, string) {
	if len(r.names) == 1 {
		return r.exports[r.names[0]].ready()
	}
	var why []string
	ok := true
	for _, n := range r.names {
		eok, ewhy := r.exports[n].ready()
		ok = ok && eok
		why = append(why, n+": "+ewhy)
	}
	return ok, strings.Join(why, "\n")
}

// handler serves /metrics, /healthz and /readyz. The reasons /readyz
// gives pass the same redactor as the logs.
func (m *metrics) handler(ready *readiness, secrets []string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready.ready()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, redact.New(secrets...).String(why))
	})
	return mux
}
