// Package producer is the Kafka side of tvm2kafka: the kafka-go Writer and
// its Transport (acks=all, compression, TLS, SASL PLAIN / SCRAM), topic
// creation, the partition balancer, and the snapshot pipeline that turns
// the part files of one export into record messages bracketed, in every
// partition, by snapshot-start and snapshot-end (or snapshot-abort)
// markers (README "Messages: the contract for consumers").
//
// # Pipeline
//
// Snapshot.Run writes snapshot-start to every partition and waits for the
// acknowledgement, then processes Workers part files at once. Each part has
// one reader goroutine (PartOpener → schema.LineReader → schema.DeviceID →
// record message, copied into a reusable per-batch arena) and one writer
// goroutine; two batches per part alternate, so decompression overlaps the
// broker round trip and memory stays bounded whatever the snapshot's size.
// When every record is acknowledged, snapshot-end carries the counts.
//
// Rejected lines (not a JSON object, no DeviceId, the reserved key
// "mde.snapshot", longer than MaxMessageBytes, refused by the broker as
// MESSAGE_TOO_LARGE) are counted, sent to the DLQ topic when one is set and
// logged by position only, never by content.
//
// # Faults
//
// A retryable read error (SnapshotConfig.Retryable) reopens the part with
// backoff and skips every line already handed to the writer, so a retry
// publishes no line twice. Failed writes are retried with backoff; only the
// messages that failed are sent again. On a non-retryable error, on
// exhausted retries or on cancellation, reading stops, the write in flight
// may finish within FlushTimeout, and snapshot-abort is written to every
// partition.
//
// Azure Event Hubs (Kafka endpoint): TLS on, SASL PLAIN with user
// "$ConnectionString" and the namespace connection string as password,
// port 9093; a request must stay under 1 MB, which the default BatchBytes
// (1,000,000) respects.
package producer
