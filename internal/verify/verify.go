// Package verify reads a topic back and checks it against the message
// contract: every run bracketed by snapshot-start and snapshot-end (or
// snapshot-abort) in every partition, records keyed by their DeviceId on
// the Java murmur2 partition, each (part, line) once, counts that add up.
//
// It is the consumer's view of tvm2kafka, used by `tvm2kafka demo` and by
// the integration tests; it uses franz-go, a client independent of the
// kafka-go writer under test.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Message is one Kafka message as a consumer sees it.
type Message struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
}

// ReadTopic reads every message of every partition of topic, from the
// start up to the high watermark at the time of the call. opts are added
// to the client's options (TLS, SASL).
func ReadTopic(ctx context.Context, brokers []string, topic string, opts ...kgo.Opt) ([]Message, int, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
	}, opts...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("verify: client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("verify: end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, 0, fmt.Errorf("verify: end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	partitions := 0
	ends.Each(func(o kadm.ListedOffset) {
		partitions++
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	var out []Message
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, 0, fmt.Errorf("verify: reading %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, 0, fmt.Errorf("verify: reading %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			h := make(map[string]string, len(r.Headers))
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			out = append(out, Message{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: h})
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out, partitions, nil
}

// Run is what one mde.run_id left in the topic.
type Run struct {
	RunID         string
	Export        string
	GeneratedTime string
	Parts         int
	// Partitions with each marker.
	Started, Ended, Aborted int
	// Records counts record messages of the run, PerPartition by partition.
	Records      int64
	PerPartition []int64
	// StartIn and EndIn tell, per partition, whether the run's
	// snapshot-start and snapshot-end were found there.
	StartIn, EndIn []bool
	// EndRecords and EndRejected are what snapshot-end claims.
	EndRecords, EndRejected int64
	Reason                  string // of a snapshot-abort
	// Complete: start and end on every partition, counts agree, no problem.
	Complete bool
	Problems []string
}

// Report is the verification of one topic.
type Report struct {
	Partitions int
	Runs       []*Run // in order of first appearance
	Problems   []string
}

// Complete reports whether the last run in the topic is complete.
func (r *Report) Complete() bool {
	return len(r.Runs) > 0 && r.Runs[len(r.Runs)-1].Complete && len(r.Problems) == 0
}

// Run returns the run with id, or nil.
func (r *Report) Run(id string) *Run {
	for _, run := range r.Runs {
		if run.RunID == id {
			return run
		}
	}
	return nil
}

// Check verifies msgs, the content of a topic with the given number of
// partitions, against the message contract.
func Check(msgs []Message, partitions int) *Report {
	keyReaders := map[string]*schema.Keys{}
	rep := &Report{Partitions: partitions}
	sorted := append([]Message(nil), msgs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Partition != sorted[j].Partition {
			return sorted[i].Partition < sorted[j].Partition
		}
		return sorted[i].Offset < sorted[j].Offset
	})
	runs := map[string]*Run{}
	seen := map[string]map[string]bool{} // run → "part:line"
	getRun := func(id string) *Run {
		r := runs[id]
		if r == nil {
			r = &Run{RunID: id, PerPartition: make([]int64, partitions),
				StartIn: make([]bool, partitions), EndIn: make([]bool, partitions)}
			runs[id] = r
			seen[id] = map[string]bool{}
			rep.Runs = append(rep.Runs, r)
		}
		return r
	}
	const (
		none = iota
		open
		closed
	)
	phase := map[string]int{} // run + partition → phase
	for _, m := range sorted {
		id := m.Headers[schema.HeaderRunID]
		r := getRun(id)
		where := fmt.Sprintf("partition %d offset %d", m.Partition, m.Offset)
		pk := id + "/" + strconv.Itoa(int(m.Partition))
		if int(m.Partition) >= partitions {
			r.Problems = append(r.Problems, where+": partition beyond the topic's count")
			continue
		}
		if string(m.Key) == schema.MarkerKey {
			var mk schema.Marker
			if err := json.Unmarshal(m.Value, &mk); err != nil {
				r.Problems = append(r.Problems, where+": marker value is not JSON: "+err.Error())
				continue
			}
			if string(mk.Kind) != m.Headers[schema.HeaderMarker] || mk.RunID != id ||
				mk.Partition != int(m.Partition) || mk.Partitions != partitions ||
				mk.Export != m.Headers[schema.HeaderExport] || mk.GeneratedTime != m.Headers[schema.HeaderGeneratedTime] {
				r.Problems = append(r.Problems, where+": marker value and headers disagree")
			}
			r.Export, r.GeneratedTime, r.Parts = mk.Export, mk.GeneratedTime, mk.Parts
			switch mk.Kind {
			case schema.MarkerStart:
				if phase[pk] != none {
					r.Problems = append(r.Problems, where+": second snapshot-start")
				}
				phase[pk] = open
				r.Started++
				r.StartIn[m.Partition] = true
			case schema.MarkerEnd:
				if phase[pk] != open {
					r.Problems = append(r.Problems, where+": snapshot-end without snapshot-start")
				}
				phase[pk] = closed
				r.Ended++
				r.EndIn[m.Partition] = true
				if mk.Records == nil || mk.PartitionRecords == nil || mk.Rejected == nil {
					r.Problems = append(r.Problems, where+": snapshot-end without counts")
					continue
				}
				if *mk.PartitionRecords != r.PerPartition[m.Partition] {
					r.Problems = append(r.Problems, fmt.Sprintf("%s: snapshot-end says %d records in the partition, %d seen", where, *mk.PartitionRecords, r.PerPartition[m.Partition]))
				}
				r.EndRecords, r.EndRejected = *mk.Records, *mk.Rejected
			case schema.MarkerAbort:
				phase[pk] = closed
				r.Aborted++
				r.Reason = mk.Reason
			default:
				r.Problems = append(r.Problems, where+": unknown marker "+string(mk.Kind))
			}
			continue
		}
		// A record.
		if phase[pk] != open {
			r.Problems = append(r.Problems, where+": record outside snapshot-start … snapshot-end")
		}
		r.Records++
		r.PerPartition[m.Partition]++
		kr := keyReaders[m.Headers[schema.HeaderExport]]
		if kr == nil {
			kr = schema.NewKeys(schema.KeysOf(m.Headers[schema.HeaderExport]))
			keyReaders[m.Headers[schema.HeaderExport]] = kr
		}
		value, checkValue := m.Value, true
		switch ct := m.Headers[schema.HeaderContentType]; ct {
		case schema.ContentTypeAvro, schema.ContentTypeJSONSchema:
			// A typed value (README "Typed topics"): the Confluent wire
			// format; a JSON Schema value's payload is JSON with the
			// documented columns, an Avro one is checked by mde.key only.
			if len(value) < 5 || value[0] != 0 {
				r.Problems = append(r.Problems, where+": "+ct+" value without the Confluent wire format prefix")
			}
			if len(value) >= 5 {
				value = value[5:]
			}
			checkValue = ct == schema.ContentTypeJSONSchema
			if m.Headers[schema.HeaderKey] == "" {
				r.Problems = append(r.Problems, where+": "+schema.HeaderKey+" missing")
			}
		case schema.ContentTypeJSON:
		default:
			r.Problems = append(r.Problems, where+": content-type is not application/json")
		}
		if checkValue {
			id2, natural, err := kr.Read(value)
			if err != nil || string(id2) != string(m.Key) {
				r.Problems = append(r.Problems, where+": key is not the value's DeviceId")
			} else if m.Headers[schema.HeaderKey] != string(natural) {
				r.Problems = append(r.Problems, fmt.Sprintf("%s: %s is %q, the natural key of the value is %s", where, schema.HeaderKey, m.Headers[schema.HeaderKey], natural))
			}
		}
		if p := schema.Partition(m.Key, partitions); p != int(m.Partition) {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: key hashes to partition %d (Java murmur2)", where, p))
		}
		for _, h := range []string{schema.HeaderExport, schema.HeaderGeneratedTime, schema.HeaderPart, schema.HeaderLine} {
			if m.Headers[h] == "" {
				r.Problems = append(r.Problems, where+": header "+h+" missing")
			}
		}
		pos := m.Headers[schema.HeaderPart] + ":" + m.Headers[schema.HeaderLine]
		if seen[id][pos] {
			r.Problems = append(r.Problems, where+": part:line "+pos+" published twice")
		}
		seen[id][pos] = true
	}
	for _, r := range rep.Runs {
		r.Complete = r.Started == partitions && r.Ended == partitions && r.Aborted == 0 &&
			r.EndRecords == r.Records && len(r.Problems) == 0
		if r.Started != partitions {
			r.Problems = append(r.Problems, fmt.Sprintf("snapshot-start on %d of %d partitions", r.Started, partitions))
		}
	}
	return rep
}
