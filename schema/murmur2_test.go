package schema

import (
	"fmt"
	"testing"
)

func TestMurmur2KafkaVectors(t *testing.T) {
	// org.apache.kafka.common.utils.UtilsTest#testMurmur2.
	vectors := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range vectors {
		if got := int32(Murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestPartition(t *testing.T) {
	tests := []struct {
		key        string
		partitions int
		want       int
	}{
		// (murmur2 & 0x7fffffff) % n, computed by hand from the vectors above:
		// "foobar": -790332482 & 0x7fffffff = 1357151166.
		{"foobar", 6, 1357151166 % 6},
		{"foobar", 7, 1357151166 % 7},
		// "21": -973932308 & 0x7fffffff = 1173551340.
		{"21", 6, 1173551340 % 6},
		{"21", 1, 0},
		// "abc" is positive: 479470107.
		{"abc", 12, 479470107 % 12},
	}
	for _, tc := range tests {
		if got := Partition([]byte(tc.key), tc.partitions); got != tc.want {
			t.Errorf("Partition(%q, %d) = %d, want %d", tc.key, tc.partitions, got, tc.want)
		}
	}
	// Every key lands in range, and the keys spread over all partitions.
	seen := make(map[int]int)
	for i := range 10000 {
		p := Partition(fmt.Appendf(nil, "%040x", i), 6)
		if p < 0 || p >= 6 {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p]++
	}
	for p := range 6 {
		if seen[p] < 1400 {
			t.Errorf("partition %d got only %d of 10000 keys", p, seen[p])
		}
	}
}

func TestPartitionPanicsOnZero(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for 0 partitions")
		}
	}()
	Partition([]byte("a"), 0)
}

func BenchmarkPartition(b *testing.B) {
	key := []byte("3f2b8c9d0e1a4b5c6d7e8f90a1b2c3d4e5f60718")
	b.SetBytes(int64(len(key)))
	b.ReportAllocs()
	sum := 0
	for b.Loop() {
		sum += Partition(key, 6)
	}
	if sum < 0 {
		b.Fatal(sum)
	}
}
