package schema

// Murmur2 is Kafka's org.apache.kafka.common.utils.Utils.murmur2, the
// hash of the Java client's default partitioner, as an unsigned value
// (int32(Murmur2(b)) is what Java returns).
func Murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	i := 0
	for ; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch n - i {
	case 3:
		h ^= uint32(data[i+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[i+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[i])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// Partition returns the partition the Java client's default partitioner
// picks for a record with a non-null key among partitions partitions:
// (murmur2(key) & 0x7fffffff) % partitions. It panics if partitions <= 0.
func Partition(key []byte, partitions int) int {
	if partitions <= 0 {
		panic("schema: Partition: partitions must be > 0")
	}
	return int(Murmur2(key)&0x7fffffff) % partitions
}
