package runner

import (
	"fmt"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/names"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Verdict is what the tail of the topic decides for a run that has just
// fetched the export's manifest (docs/messages.md, "Unchanged exports and
// concurrent runs").
type Verdict struct {
	// Unchanged: every partition ends with a snapshot-end of this export
	// and generatedTime.
	Unchanged bool
	// Live is the most recently written unfinished run whose lease has
	// not expired; nil when there is none.
	Live *wire.UnfinishedRun
	// Dead are unfinished runs whose lease expired (killed, OOM).
	Dead []wire.UnfinishedRun
	// Publish tells whether the run goes on; false when unchanged or
	// leased and not forced.
	Publish bool
}

// Decide applies the two rules to the tail: an unchanged export is not
// published again, and a run does not start while another run's
// unfinished snapshot is the newest thing in some partition and younger
// than lease. force publishes anyway.
func Decide(tail *wire.Tail, m schema.Manifest, now time.Time, lease time.Duration, force bool) Verdict {
	v := Verdict{Unchanged: tail.Unchanged(m.Export, m.GeneratedTime)}
	for _, r := range tail.Unfinished() {
		if now.Sub(r.LastWrite) < lease {
			if v.Live == nil {
				r := r
				v.Live = &r
			}
			continue
		}
		v.Dead = append(v.Dead, r)
	}
	v.Publish = force || (!v.Unchanged && v.Live == nil)
	return v
}

// LeaseError is the failure of a run that found another run publishing.
type LeaseError struct {
	Run   wire.UnfinishedRun
	Topic string
	// Age is how long ago the other run wrote its newest message.
	Age   time.Duration
	Lease time.Duration
	// Names names the lease and force settings in the message.
	Names names.Func
}

func (e *LeaseError) Error() string {
	return fmt.Sprintf("run %s is publishing to topic %s (its newest message was written %s ago, within %s %s): nothing published; %s=true publishes anyway",
		e.Run.RunID, e.Topic, e.Age.Round(time.Second), e.Names.Of("runner.Lease"), e.Lease, e.Names.Of("runner.Force"))
}

// Expires is when the other run's lease ends.
func (e *LeaseError) Expires() time.Time { return e.Run.LastWrite.Add(e.Lease) }
