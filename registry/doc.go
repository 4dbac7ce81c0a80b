// Package registry registers the schemas of typed record values
// (KAFKA_VALUE_FORMAT=avro, json-schema) with a Schema Registry through
// the Confluent-compatible REST API (Confluent Schema Registry, Apicurio
// Registry's /apis/ccompat/v7, Karapace, Redpanda), with franz-go's sr
// client. Subjects follow TopicNameStrategy, "<topic>-value"; a subject
// without its own compatibility level is set to BACKWARD before its first
// schema, so that the registry checks every later version.
package registry
