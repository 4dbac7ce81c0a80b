package consumer

import (
	"fmt"
	"time"

	"github.com/tvm2kafka/tvm2kafka/schema"
)

// Verdict answers "does the topic end with a complete snapshot?" for what
// a Reader has read: the newest snapshot (the run whose snapshot-start is
// the newest; on a tie the run found in most partitions), checked in every
// partition. `tvm2kafka verify` and `tvm2kafka demo` decide with it.
type Verdict struct {
	// Complete: every partition holds snapshot-start and snapshot-end of
	// the run with partitionRecords records of it between them, and they
	// add up to the records snapshot-end states for the whole run.
	Complete bool
	// RunID is the newest run; "" when no partition holds a
	// snapshot-start. Export, GeneratedTime and Parts are its
	// snapshot-start's.
	RunID, Export, GeneratedTime string
	Parts                        int
	// Records counts the run's records read in all partitions; Claimed
	// and Rejected are the records and rejected lines its snapshot-end
	// states for the whole run.
	Records, Claimed, Rejected int64
	// Partitions, by partition.
	Partitions []PartitionVerdict
	// Problems says what keeps the snapshot from being complete.
	Problems []string
}

// PartitionVerdict is one partition's part of a Verdict.
type PartitionVerdict struct {
	Partition int
	// RunID is the run of the partition's newest snapshot-start ("" when
	// it holds none).
	RunID string
	// Start, End and Aborted tell which markers of RunID it holds.
	Start, End, Aborted bool
	// Records counts RunID's records after its snapshot-start;
	// PartitionRecords is what its snapshot-end states (nil without one).
	Records          int64
	PartitionRecords *int64
}

// Verdict returns the verdict on the newest snapshot in st.
func (st *Status) Verdict() *Verdict {
	v := &Verdict{Partitions: []PartitionVerdict{}}
	var runTime time.Time
	count := map[string]int{}
	for _, ps := range st.Partitions {
		if ps.Start != nil {
			count[ps.RunID]++
		}
	}
	for _, ps := range st.Partitions {
		if ps.Start == nil {
			continue
		}
		t := ps.Start.Time
		if v.RunID == "" || t.After(runTime) || (t.Equal(runTime) && count[ps.RunID] > count[v.RunID]) {
			v.RunID, runTime = ps.RunID, t
		}
	}
	run := v.RunID
	complete := run != ""
	if run == "" {
		v.Problems = append(v.Problems, "no snapshot: no partition holds a snapshot-start")
	}
	found := false
	for _, ps := range st.Partitions {
		pv := PartitionVerdict{Partition: ps.Partition, Records: ps.Records, RunID: ps.RunID, Start: ps.Start != nil}
		if ps.Start != nil && ps.RunID == run && !found {
			found = true
			v.Export, v.GeneratedTime, v.Parts = ps.Start.Export, ps.Start.GeneratedTime, ps.Start.Parts
		}
		if ps.Finish != nil {
			switch ps.Finish.Kind {
			case schema.MarkerEnd:
				pv.End, pv.PartitionRecords = true, ps.Finish.PartitionRecords
				if ps.RunID == run && ps.Finish.Records != nil {
					v.Claimed = *ps.Finish.Records
					if ps.Finish.Rejected != nil {
						v.Rejected = *ps.Finish.Rejected
					}
				}
			case schema.MarkerAbort:
				pv.Aborted = true
			}
		}
		if ps.RunID == run {
			v.Records += ps.Records
		}
		v.Partitions = append(v.Partitions, pv)
		if run == "" {
			continue
		}
		where := fmt.Sprintf("partition %d: ", ps.Partition)
		switch {
		case ps.Start == nil:
			v.Problems = append(v.Problems, where+"no snapshot-start")
		case ps.RunID != run:
			v.Problems = append(v.Problems, where+"its newest snapshot-start belongs to run "+ps.RunID)
		case pv.Aborted:
			v.Problems = append(v.Problems, where+"snapshot-abort: "+ps.Finish.Reason)
		case !pv.End:
			v.Problems = append(v.Problems, where+"snapshot-start without snapshot-end (the run is still running or died)")
		case !ps.Complete():
			v.Problems = append(v.Problems, fmt.Sprintf("%s%d records of the run, snapshot-end says %s", where, ps.Records, count64(pv.PartitionRecords)))
		default:
			continue
		}
		complete = false
	}
	if complete && v.Claimed != v.Records {
		v.Problems = append(v.Problems, fmt.Sprintf("%d records in the partitions, snapshot-end says %d", v.Records, v.Claimed))
		complete = false
	}
	v.Complete = complete
	return v
}

func count64(n *int64) string {
	if n == nil {
		return "nothing"
	}
	return fmt.Sprint(*n)
}
