// Package runner owns one run: the sequence that takes one snapshot of an
// export and publishes it, and the rules that decide whether it may.
//
// Run checks or creates the topics (records, dead letters, table) before
// the export API is called, so that a broker that cannot be reached costs
// none of the API's 20 calls an hour; fetches the manifest; reads the
// newest message of every partition and applies the rules of unchanged
// exports and leases (Decide); reads the table topic back meanwhile; then
// runs the producer's snapshot pipeline with the table as its observer.
// It returns a typed Outcome; the program logs it, counts it in its
// metrics and maps it to an exit status.
package runner
