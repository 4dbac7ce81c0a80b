// Package producer is the snapshot pipeline: it turns the part files of
// one export into record messages bracketed, in every partition, by
// snapshot-start and snapshot-end (or snapshot-abort) markers
// (docs/messages.md and docs/failures.md).
//
// # Pipeline
//
// Snapshot.Run starts a wire.Writer on its Sink (one idempotent producer
// id, one sender per partition), writes snapshot-start to every partition
// and waits for the acknowledgement, then processes Workers part files at
// once. Each part has one goroutine (PartOpener → schema.LineReader →
// schema.DeviceID → schema.Partition) that adds each record to the batch
// of its partition; Writer.Add blocks while a partition's batch is full
// and the previous one is in flight, so memory stays bounded whatever the
// snapshot's size. When every record is acknowledged, snapshot-end carries
// the counts; the Observer (the table topic) is told about every
// acknowledged record and then about the completion.
//
// The Kafka side — connections, record batches with producer id and
// sequence (exactly once whatever the broker answers), retries — is the
// wire package's; this package decides what is written and in which order.
//
// Rejected lines (not a JSON object, no DeviceId, the reserved key
// "mde.snapshot", a record larger than MaxMessageBytes, refused by the
// broker as MESSAGE_TOO_LARGE) are counted, sent to the DLQ topic when one
// is set and logged by position only, never by content.
//
// # Faults
//
// A retryable read error (SnapshotConfig.Retryable) reopens the part with
// backoff and skips every line already added to a partition, so a retry
// publishes no line twice. On a non-retryable error, on exhausted retries
// or on cancellation, reading stops, unsent records are dropped, the
// request in flight may finish within FlushTimeout, and snapshot-abort is
// written to every partition by a producer id of its own.
package producer
