package main

import (
	"fmt"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// verdict is what the tail of the topic decides for a run that has just
// fetched the export's manifest (README, "Unchanged exports and
// concurrent runs").
type verdict struct {
	// unchanged: every partition ends with a snapshot-end of this export
	// and generatedTime.
	unchanged bool
	// live is the most recently written unfinished run whose lease has
	// not expired; nil when there is none.
	live *wire.UnfinishedRun
	// dead are unfinished runs whose lease expired (killed, OOM).
	dead []wire.UnfinishedRun
	// publish tells whether the run goes on; false when unchanged or
	// leased and not forced.
	publish bool
}

// decide applies the two rules to the tail: an unchanged export is not
// published again, and a run does not start while another run's
// unfinished snapshot is the newest thing in some partition and younger
// than lease. force publishes anyway.
func decide(tail *wire.Tail, m schema.Manifest, now time.Time, lease time.Duration, force bool) verdict {
	v := verdict{unchanged: tail.Unchanged(m.Export, m.GeneratedTime)}
	for _, r := range tail.Unfinished() {
		if now.Sub(r.LastWrite) < lease {
			if v.live == nil {
				r := r
				v.live = &r
			}
			continue
		}
		v.dead = append(v.dead, r)
	}
	v.publish = force || (!v.unchanged && v.live == nil)
	return v
}

// leaseError is the failure of a run that found another run publishing.
type leaseError struct {
	run   wire.UnfinishedRun
	topic string
	age   time.Duration
	lease time.Duration
}

func (e *leaseError) Error() string {
	return fmt.Sprintf("run %s is publishing to topic %s (its newest message was written %s ago, within TVM2KAFKA_LEASE %s): nothing published; TVM2KAFKA_FORCE=true publishes anyway",
		e.run.RunID, e.topic, e.age.Round(time.Second), e.lease)
}
