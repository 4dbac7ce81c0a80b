// Package table keeps the table topic: a compacted
// topic that holds, after each complete snapshot, exactly the snapshot's
// devices — one record per DeviceId whose value is the device's line — so
// that a Kafka Streams KTable, a ksqlDB TABLE or Flink's upsert-kafka
// source can use it directly.
//
// # A run
//
//  1. Ensure (before the export API is called): the topic exists with
//     cleanup.policy=compact, or is created so; a topic that would delete
//     records by retention is a configuration error.
//  2. Load (once a snapshot is going to be published): the current state
//     is read back from the table topic itself, from its beginning to its
//     end offsets — Kafka is the only store. Per device it keeps 40 bytes:
//     the DeviceId (20 bytes, decoded from its 40 hex characters) and a
//     128-bit keyed digest plus the length of its value.
//  3. Record (the snapshot pipeline's Observer, once per acknowledged
//     record): a device whose line equals its table value is left alone;
//     the others are staged as "added" or "changed".
//  4. Complete (after every snapshot-end was acknowledged): the staged
//     records are written, then a tombstone for every device of the table
//     that the snapshot did not contain ("removed").
//
// Every record written carries the record message's headers (mde.export,
// mde.generated_time, mde.run_id, mde.part, mde.line, content-type) plus
// mde.change = added | changed; a tombstone has a null value and
// mde.export, mde.generated_time, mde.run_id and mde.change = removed.
// Records are partitioned by the Java client's murmur2 of the key over the
// table topic's own partition count.
//
// # Failures
//
// Staged records are held in memory up to Config.BufferBytes (32 MiB, a
// few percent of a large export), so that a run that fails writes nothing
// at all in the usual case. When a run changes more than that (the first
// run, a mass change), the staged records are written while the snapshot
// is published; a failed run may then have written some added and changed
// records — each of them a device's line from the newer export — but
// never a tombstone. Whatever a run leaves behind, the next complete run
// reads the table back and writes exactly the differences to its
// snapshot.
//
// # Not ours
//
// A record whose key is not a DeviceId (40 lowercase hexadecimal
// characters) and that carries no mde.change header was not written by
// tvm2kafka: it is left alone — never compared, never tombstoned — and
// counted; one warning per run names the first one.
package table
