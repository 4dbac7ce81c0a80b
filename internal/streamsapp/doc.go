// Package streamsapp holds no Go code: it is the home of a small Kafka
// Streams application (src/main/java, built by scripts/streamsapp.sh with
// Maven) that the end-to-end tests run against tvm2kafka's table and
// records topics, and of the test that keeps the README's Kafka Streams
// snippet identical to that application's code.
package streamsapp
