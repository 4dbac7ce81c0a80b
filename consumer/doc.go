// Package consumer reads a topic written by tvm2kafka and hands over
// complete snapshots: each partition's complete share of a snapshot, and
// the whole snapshot once every partition holds its share.
//
// tvm2kafka publishes every snapshot (one run, one mde.run_id) into every
// partition of the topic as
//
//	snapshot-start … the run's records … snapshot-end
//
// or, when the run fails, snapshot-abort instead of snapshot-end. A Reader
// applies the consuming protocol of docs/messages.md to every partition:
//
//  1. snapshot-start opens a staging area (a Stage) for its run id; a
//     newer snapshot-start of another run supersedes an unfinished one;
//  2. records carrying that run id (header mde.run_id) go into the stage;
//     records of other runs (an older run that died mid-way) are ignored;
//  3. snapshot-end of that run closes the stage: when the number of staged
//     records equals the marker's partitionRecords, the share is complete
//     and handed to Handler.Share (the consumer swaps it in); otherwise it
//     is discarded;
//  4. snapshot-abort discards the stage (Handler.Discard).
//
// Across partitions: when every partition's newest complete share belongs
// to one run, and the counts agree with snapshot-end's records, the whole
// snapshot is complete and handed to Handler.Snapshot.
//
// By default a Reader starts at the newest snapshot-start of each
// partition without reading the topic from its beginning: it looks at the
// newest message of the partition and, when that is a snapshot-end, jumps
// straight to its run's snapshot-start (partitionRecords messages before
// it); otherwise it searches backwards from the end in growing chunks. On
// a topic holding many snapshots it reads about one snapshot.
//
// Records are staged in memory by default (Share.Records); a program that
// handles large snapshots stages them itself with Config.NewStage (into a
// database transaction, a temporary table, a counter).
//
// Config takes a neutral connection: Brokers, a *tls.Config and SASL
// (PLAIN, SCRAM, or OAUTHBEARER with a token function), nothing of a Kafka
// client library. The Reader reads through tvm2kafka's own Kafka package
// (record batches decoded without allocating per record); it joins no
// consumer group and commits no offset: a program that stops reads again
// from the newest snapshot when it starts.
//
// Status.Verdict says whether the topic ends with a complete snapshot:
// the one answer `tvm2kafka verify` and `tvm2kafka demo` give.
package consumer
