package producer

import (
	"context"
	"errors"
)

// Observer is told about every record a snapshot publishes and about the
// snapshot's completion (the table topic is one).
//
// What a failure means for the run:
//   - Record returning an error fails the run like a failed write: reading
//     stops, snapshot-abort is written to every partition, exit status 1.
//   - Complete returning an error leaves the snapshot complete in the
//     records topic (its snapshot-end markers are written and stay valid);
//     Snapshot.Run returns a *CompleteError and the run exits with status 1,
//     so that operators see that the observer (the table topic) is behind.
type Observer interface {
	// Record is called once per accepted record, from several goroutines
	// at once, with its key (DeviceId), its natural key (the mde.key
	// header) and its value; they are valid only during the call.
	Record(part int, line int64, key, natural, value []byte) error
	// Complete is called after every snapshot-end marker was acknowledged.
	Complete(ctx context.Context) error
}

// CompleteError is returned by Snapshot.Run when the snapshot is complete
// (snapshot-end written on every partition) but SnapshotConfig.Observer's
// Complete failed.
type CompleteError struct {
	Err error
}

func (e *CompleteError) Error() string {
	return "snapshot complete, but completing its observer failed: " + e.Err.Error()
}

func (e *CompleteError) Unwrap() error { return e.Err }

// IsComplete reports whether err, returned by Snapshot.Run, still means that
// the snapshot itself is complete: nil or a *CompleteError.
func IsComplete(err error) bool {
	var ce *CompleteError
	return err == nil || errors.As(err, &ce)
}
