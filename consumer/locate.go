package consumer

import (
	"context"
	"encoding/json"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Chunks of the backward search for the newest snapshot-start: the first
// chunk is small (the newest run is usually short or found by the jump),
// then each is four times the previous one.
const (
	firstChunk = 1024
	maxChunk   = 4 << 20
)

// locate returns the offset of the newest snapshot-start of p, or p.End
// when the partition holds none.
//
// The common case costs two small fetches: the partition's newest message
// is the snapshot-end of a run with partitionRecords records, so the run's
// snapshot-start is partitionRecords+1 offsets before it; that message is
// read to confirm it. Otherwise (the newest run was aborted, is still
// running, or other messages are interleaved) the partition is searched
// backwards from its end in growing chunks, each read forwards.
func (r *Reader) locate(ctx context.Context, p wire.Partition) (int64, error) {
	if p.End <= p.First {
		return p.End, nil
	}
	last, err := r.markerAt(ctx, p, p.End-1)
	if err != nil {
		return 0, err
	}
	if last != nil && last.Kind == schema.MarkerStart {
		return p.End - 1, nil
	}
	if last != nil && last.Kind == schema.MarkerEnd && last.PartitionRecords != nil {
		at := p.End - 1 - *last.PartitionRecords - 1
		if at >= p.First {
			start, err := r.markerAt(ctx, p, at)
			if err != nil {
				return 0, err
			}
			if start != nil && start.Kind == schema.MarkerStart && start.RunID == last.RunID {
				return at, nil
			}
		}
	}
	hi, chunk := p.End, int64(firstChunk)
	for hi > p.First {
		lo := max(p.First, hi-chunk)
		found := int64(-1)
		err := r.scan.Scan(ctx, p.ID, lo, hi, func(m *wire.Message) error {
			if isStart(m) {
				found = m.Offset
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if found >= 0 {
			return found, nil
		}
		hi, chunk = lo, min(chunk*4, maxChunk)
	}
	return p.End, nil
}

// markerAt returns the marker at offset, or nil when the message there is
// not a marker (or offset holds no message).
func (r *Reader) markerAt(ctx context.Context, p wire.Partition, offset int64) (*schema.Marker, error) {
	var mk *schema.Marker
	err := r.probe.Scan(ctx, p.ID, offset, offset+1, func(m *wire.Message) error {
		if m.Offset != offset || string(m.Key) != schema.MarkerKey {
			return wire.ErrStop
		}
		var v schema.Marker
		if json.Unmarshal(m.Value, &v) == nil {
			mk = &v
		}
		return wire.ErrStop
	})
	return mk, err
}

func isStart(m *wire.Message) bool {
	if string(m.Key) != schema.MarkerKey {
		return false
	}
	kind, _ := m.Header(schema.HeaderMarker)
	return string(kind) == string(schema.MarkerStart)
}
