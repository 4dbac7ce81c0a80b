package runner

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

func tailOf(msgs ...wire.TailMessage) *wire.Tail {
	for i := range msgs {
		msgs[i].Partition = i
	}
	return &wire.Tail{Topic: "t", Partitions: msgs}
}

func tailMsg(kind schema.MarkerKind, run, gen string, at time.Time) wire.TailMessage {
	m := wire.TailMessage{Offset: 5, Time: at, Headers: map[string]string{
		schema.HeaderRunID: run, schema.HeaderExport: schema.ExportInfoGathering, schema.HeaderGeneratedTime: gen,
	}}
	if kind != "" {
		m.Key = []byte(schema.MarkerKey)
		m.Headers[schema.HeaderMarker] = string(kind)
	} else {
		m.Key = []byte("0123456789abcdef0123456789abcdef01234567")
	}
	return m
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const g1, g2 = "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"
	m := schema.Manifest{Export: schema.ExportInfoGathering, GeneratedTime: g2}
	lease := 15 * time.Minute
	end := func(gen string) wire.TailMessage {
		return tailMsg(schema.MarkerEnd, "old", gen, now.Add(-time.Hour))
	}
	cases := []struct {
		name               string
		tail               *wire.Tail
		force              bool
		publish, unchanged bool
		live               string
		dead               []string
	}{
		{"empty topic", tailOf(wire.TailMessage{Offset: -1}, wire.TailMessage{Offset: -1}), false, true, false, "", nil},
		{"same export", tailOf(end(g2), end(g2)), false, false, true, "", nil},
		{"same export forced", tailOf(end(g2), end(g2)), true, true, true, "", nil},
		{"older export", tailOf(end(g1), end(g1)), false, true, false, "", nil},
		{"one partition empty", tailOf(end(g2), wire.TailMessage{Offset: -1}), false, true, false, "", nil},
		{"after an abort", tailOf(tailMsg(schema.MarkerAbort, "x", g2, now), end(g2)), false, true, false, "", nil},
		{"live run", tailOf(end(g1), tailMsg(schema.MarkerStart, "busy", g2, now.Add(-time.Minute))), false, false, false, "busy", nil},
		{"live run forced", tailOf(end(g1), tailMsg("", "busy", g2, now.Add(-time.Minute))), true, true, false, "busy", nil},
		{"dead run", tailOf(end(g1), tailMsg("", "gone", g2, now.Add(-16*time.Minute))), false, true, false, "", []string{"gone"}},
		{"live beside dead", tailOf(tailMsg("", "gone", g2, now.Add(-time.Hour)), tailMsg(schema.MarkerStart, "busy", g2, now.Add(-14*time.Minute))), false, false, false, "busy", []string{"gone"}},
		{"clock ahead", tailOf(tailMsg("", "future", g2, now.Add(time.Minute))), false, false, false, "future", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(c.tail, m, now, lease, c.force)
			live := ""
			if v.Live != nil {
				live = v.Live.RunID
			}
			var dead []string
			for _, d := range v.Dead {
				dead = append(dead, d.RunID)
			}
			if v.Publish != c.publish || v.Unchanged != c.unchanged || live != c.live || !slices.Equal(dead, c.dead) {
				t.Fatalf("verdict publish %v unchanged %v live %q dead %v; want %v %v %q %v", v.Publish, v.Unchanged, live, dead, c.publish, c.unchanged, c.live, c.dead)
			}
		})
	}
}

func TestLeaseErrorNamesTheRun(t *testing.T) {
	err := &LeaseError{Run: wire.UnfinishedRun{RunID: "5b0e-run"}, Topic: "mde.infogathering", Age: 90 * time.Second, Lease: 15 * time.Minute,
		Names: func(k string) string {
			return map[string]string{"runner.Lease": "TVM2KAFKA_LEASE", "runner.Force": "TVM2KAFKA_FORCE"}[k]
		}}
	for _, want := range []string{"5b0e-run", "mde.infogathering", "1m30s", "TVM2KAFKA_LEASE", "TVM2KAFKA_FORCE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err.Error(), want)
		}
	}
}

func TestAnswerCounter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	var codes []string
	c := &http.Client{Transport: &answerCounter{count: func(code string) { codes = append(codes, code) }}}
	for _, p := range []string{"/", "/busy"} {
		resp, err := c.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := c.Get("http://127.0.0.1:1/"); err == nil {
		t.Fatal("no error from a closed port")
	}
	if !slices.Equal(codes, []string{"200", "429", "error"}) {
		t.Fatalf("codes %v", codes)
	}
}
