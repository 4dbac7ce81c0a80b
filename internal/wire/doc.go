// Package wire is the one place that talks to Kafka: every byte that
// tvm2kafka sends to or reads from a broker goes through it, and it is the
// only package that imports kafka-go.
//
// What it holds:
//   - Connections: Config and NewKafka (kafka-go's Transport
//     with TLS, mutual TLS, SASL PLAIN / SCRAM and OAUTHBEARER, whose
//     connections retire before their token expires).
//   - Topic administration: EnsureTopic (create a missing topic with its
//     configs) and EnsureCompacted (the table topic's
//     cleanup.policy check, PolicyError).
//   - The idempotent per-partition writer: Writer (one sender per
//     partition, one produce request in flight, every batch encoded here in
//     message format v2 with the producer id and base sequence, so the
//     broker appends a batch once however often it is sent), with hooks for
//     acknowledged records (WriterConfig.Observe) and refused ones
//     (WriterConfig.OnRefused), an explicit partition per record, and
//     KeyedWriter for keyed messages and tombstones.
//   - Reads: Kafka.Tail (the newest message of every partition, by offset),
//     Kafka.Partitions and Scanner (ranges of one partition, fetched raw
//     and decoded here without allocating per message).
//   - Failure handling: IsRetryable, the one classifier of Kafka-side
//     errors, and Retry / Backoff, the one retry loop.
//
// It knows nothing of environment variables: where a message names a
// setting, the caller gives the name (Config.Names, NewTopic.Setting).
package wire
