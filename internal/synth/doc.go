// Package synth generates realistic synthetic InfoGatheringExport snapshots:
// the blob layout of an export (container, part file paths, the split of
// devices across parts) and the gzip part files themselves, one JSON object
// per device and line, shaped like Microsoft Defender's real export
// (DeviceId, DeviceName, OsPlatform, …, DeviceGatheredInfo as a JSON-encoded
// string holding AV and posture fields, now and then an undocumented extra
// column).
//
// Everything is a pure function of Options: the same seed gives the same
// device ids, records and part contents byte for byte. Records are built on
// demand from their index, so writing a part of a million devices streams
// through a small buffer and never holds the snapshot in memory.
package synth
