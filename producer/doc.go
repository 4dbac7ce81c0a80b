// Package producer is the Kafka side of tvm2kafka: the kafka-go Transport
// and Client (acks=all, compression, TLS, SASL PLAIN / SCRAM / OAUTHBEARER), topic
// creation, an idempotent per-partition produce path, and the snapshot
// pipeline that turns the part files of one export into record messages
// bracketed, in every partition, by snapshot-start and snapshot-end (or
// snapshot-abort) markers (README, "Messages" and "Failure handling").
//
// # Pipeline
//
// Snapshot.Run obtains an idempotent producer id, writes snapshot-start to
// every partition and waits for the acknowledgement, then processes Workers
// part files at once. Each part has one goroutine (PartOpener →
// schema.LineReader → schema.DeviceID → schema.Partition) that encodes each
// record straight into the batch of its partition. Every partition has one
// sender goroutine with one produce request in flight; it sends its batch
// when it is full, flushed or 5 ms old, and the part goroutines block while
// a partition's batch is full and the previous one is in flight, so memory
// stays bounded whatever the snapshot's size. When every record is
// acknowledged, snapshot-end carries the counts.
//
// # Exactly once
//
// kafka-go has no idempotent producer; this package speaks the protocol on
// kafka-go's Client: every record batch (encoded here, message format v2)
// carries the run's producer id and the partition's next sequence number,
// and a batch is retried as the same bytes, so the broker appends it once
// however often it is sent (lost answers, timeouts after the append, cut
// connections, leader changes). See DESIGN.md.
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
//
// Azure Event Hubs (Kafka endpoint): TLS on, SASL PLAIN with user
// "$ConnectionString" and the namespace connection string as password,
// port 9093; a request must stay under 1 MB, which the default BatchBytes
// (1,000,000) respects.
package producer
