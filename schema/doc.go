// Package schema holds the pure, network-free parts of tvm2kafka: the
// export manifest and part types, the Kafka header names and snapshot
// marker messages of the external contract, line framing of decompressed
// part files, DeviceId extraction and the Java-compatible murmur2
// partitioner.
//
// Nothing in this package performs I/O beyond reading an io.Reader it is
// handed; it must never import net, net/http or any Kafka or Azure SDK.
package schema
