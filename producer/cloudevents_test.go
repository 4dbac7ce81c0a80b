package producer

import (
	"context"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// TestCloudEventsHeaders: with CloudEvents on, every record and marker
// carries the binary-mode headers of the CloudEvents Kafka binding, and
// each one is a valid CloudEvent for the CloudEvents SDK (sdk-go): id
// <run_id>/<part>/<line> (markers <run_id>/<marker>/<partition>), source
// tvm2kafka/default/<export>, type com.microsoft.defender.vm.<export>.<kind>,
// time the generatedTime, subject the DeviceId; content-type stays.
func TestCloudEventsHeaders(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(3, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 2)
	var content [2]string
	for p := range 2 {
		for i := range 5 {
			content[p] += recordLine(p, i) + "\n"
		}
	}
	s, err := NewSnapshot(SnapshotConfig{RetryMaxElapsed: time.Minute, Manifest: m, Topic: "records", Partitions: 3, RunID: "run-ce",
		MaxMessageBytes: 1 << 20, CloudEvents: true}, newMemParts(map[int]string{0: content[0], 1: content[1]}), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := readTopic(t, c.ListenAddrs(), "records")
	records, markers := 0, 0
	for _, r := range recs {
		h := func(k string) string { v, _ := recHeader(r, k); return v }
		ev := cloudevents.New(h(schema.HeaderCESpecVersion))
		ev.SetID(h(schema.HeaderCEID))
		ev.SetSource(h(schema.HeaderCESource))
		ev.SetType(h(schema.HeaderCEType))
		at, err := time.Parse(time.RFC3339, h(schema.HeaderCETime))
		if err != nil {
			t.Fatalf("ce_time %q: %v", h(schema.HeaderCETime), err)
		}
		ev.SetTime(at)
		if sub := h(schema.HeaderCESubject); sub != "" {
			ev.SetSubject(sub)
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("not a valid CloudEvent (%v): %v", err, r.Headers)
		}
		if ev.SpecVersion() != "1.0" || ev.Source() != "tvm2kafka/default/"+m.Export || !at.Equal(mustTime(t, m.GeneratedTime)) {
			t.Fatalf("event %s", ev)
		}
		if string(r.Key) == schema.MarkerKey {
			markers++
			kind := h(schema.HeaderMarker)
			if ev.Type() != "com.microsoft.defender.vm."+m.Export+"."+kind || !strings.HasPrefix(ev.ID(), "run-ce/"+kind+"/") || ev.Subject() != "" {
				t.Fatalf("marker event %s", ev)
			}
			continue
		}
		records++
		if ev.Type() != "com.microsoft.defender.vm."+m.Export+".record" || ev.ID() != "run-ce/"+h(schema.HeaderPart)+"/"+h(schema.HeaderLine) ||
			ev.Subject() != string(r.Key) || h(schema.HeaderContentType) != schema.ContentTypeJSON {
			t.Fatalf("record event %s, key %s", ev, r.Key)
		}
		if last := r.Headers[len(r.Headers)-1]; last.Key != schema.HeaderKey {
			t.Fatalf("the last header is %s, want mde.key", last.Key)
		}
	}
	if records != 10 || markers != 6 {
		t.Fatalf("%d records, %d markers", records, markers)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}
