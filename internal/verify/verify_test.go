package verify

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// topic builds the messages of one well-formed run over n partitions.
type topic struct {
	n    int
	msgs []Message
	offs []int64
}

func newTopic(n int) *topic { return &topic{n: n, offs: make([]int64, n)} }

func (t *topic) add(p int, key, value string, h map[string]string) {
	t.msgs = append(t.msgs, Message{Partition: int32(p), Offset: t.offs[p], Key: []byte(key), Value: []byte(value), Headers: h})
	t.offs[p]++
}

func (t *topic) marker(p int, run string, kind schema.MarkerKind, records, partRecords int64) {
	m := schema.Marker{Kind: kind, Export: "InfoGatheringExport", GeneratedTime: "g", RunID: run, Partition: p, Partitions: t.n, Parts: 1}
	if kind == schema.MarkerEnd {
		zero := int64(0)
		m.Records, m.PartitionRecords, m.Rejected = &records, &partRecords, &zero
	}
	v, _ := json.Marshal(m)
	t.add(p, schema.MarkerKey, string(v), map[string]string{
		schema.HeaderMarker: string(kind), schema.HeaderRunID: run, schema.HeaderExport: "InfoGatheringExport", schema.HeaderGeneratedTime: "g",
	})
}

func (t *topic) record(run string, line int, p int) {
	id := fmt.Sprintf("%040x", line)
	if p < 0 {
		p = schema.Partition([]byte(id), t.n)
	}
	t.add(p, id, `{"DeviceId":"`+id+`"}`, map[string]string{
		schema.HeaderRunID: run, schema.HeaderExport: "InfoGatheringExport", schema.HeaderGeneratedTime: "g",
		schema.HeaderPart: "0", schema.HeaderLine: fmt.Sprint(line), schema.HeaderContentType: schema.ContentTypeJSON,
		schema.HeaderKey: id,
	})
}

// wellFormed returns a complete run of records lines 1..n over parts partitions,
// with mutate applied to the records before the end markers.
func wellFormed(partitions, records int, mutate func(t *topic)) *topic {
	t := newTopic(partitions)
	for p := 0; p < partitions; p++ {
		t.marker(p, "r1", schema.MarkerStart, 0, 0)
	}
	per := make([]int64, partitions)
	for i := 1; i <= records; i++ {
		t.record("r1", i, -1)
	}
	if mutate != nil {
		mutate(t)
	}
	for _, m := range t.msgs {
		if string(m.Key) != schema.MarkerKey {
			per[m.Partition]++
		}
	}
	total := int64(0)
	for _, n := range per {
		total += n
	}
	for p := 0; p < partitions; p++ {
		t.marker(p, "r1", schema.MarkerEnd, total, per[p])
	}
	return t
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name     string
		topic    *topic
		complete bool
		problem  string
	}{
		{"complete", wellFormed(3, 50, nil), true, ""},
		{"record on the wrong partition", wellFormed(3, 10, func(t *topic) {
			id := fmt.Sprintf("%040x", 99)
			t.record("r1", 99, (schema.Partition([]byte(id), 3)+1)%3)
		}), false, "Java murmur2"},
		{"line published twice", wellFormed(3, 10, func(t *topic) { t.record("r1", 5, -1) }), false, "published twice"},
		{"missing end on one partition", func() *topic {
			tp := wellFormed(2, 10, nil)
			tp.msgs = tp.msgs[:len(tp.msgs)-1]
			return tp
		}(), false, ""},
		{"record before start", func() *topic {
			tp := newTopic(1)
			tp.record("r1", 1, 0)
			tp.marker(0, "r1", schema.MarkerStart, 0, 0)
			tp.marker(0, "r1", schema.MarkerEnd, 1, 1)
			return tp
		}(), false, "outside"},
		{"end count disagrees", func() *topic {
			tp := newTopic(1)
			tp.marker(0, "r1", schema.MarkerStart, 0, 0)
			tp.record("r1", 1, 0)
			tp.marker(0, "r1", schema.MarkerEnd, 2, 2)
			return tp
		}(), false, "1 seen"},
		{"aborted", func() *topic {
			tp := newTopic(1)
			tp.marker(0, "r1", schema.MarkerStart, 0, 0)
			tp.record("r1", 1, 0)
			tp.marker(0, "r1", schema.MarkerAbort, 0, 0)
			return tp
		}(), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(tc.topic.msgs, tc.topic.n)
			run := rep.Run("r1")
			if run == nil {
				t.Fatal("run r1 not found")
			}
			if run.Complete != tc.complete {
				t.Fatalf("complete = %v, want %v; problems %v", run.Complete, tc.complete, run.Problems)
			}
			if tc.problem != "" && !strings.Contains(strings.Join(run.Problems, "\n"), tc.problem) {
				t.Fatalf("problems %q lack %q", run.Problems, tc.problem)
			}
		})
	}
}
