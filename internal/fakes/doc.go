// Package fakes holds in-process test doubles of the services tvm2kafka
// talks to: a fake Entra ID token endpoint (TLS, instance discovery and
// OpenID configuration included, so the real azidentity code path runs),
// a fake Defender export API, an in-memory Azure Blob endpoint faithful
// enough for azblob's DownloadStream and Range resumption, a fault-injecting
// reverse proxy usable in front of that store or of a real Azurite, a
// Kafka-protocol-aware TCP proxy that loses or rewrites the answers of
// chosen requests (KafkaProxy: a produce request appended by the broker
// whose answer the client never gets, or gets as an error), and an
// auto-advancing fake clock.
//
// Every server binds 127.0.0.1 only. The package is used by unit tests,
// integration tests and the embedded `tvm2kafka demo`; it imports nothing
// from the rest of the module (franz-go's kmsg and kgo decode the Kafka
// protocol for KafkaProxy).
package fakes
