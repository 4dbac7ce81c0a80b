//go:build !unix

package table

// offHeap returns n zero values of T; without mmap they live on the Go
// heap (see offheap_unix.go).
func offHeap[T any](n int) ([]T, func(), error) {
	return make([]T, n), func() {}, nil
}

// trimOffHeap does nothing without mmap.
func trimOffHeap[T any](s []T, keep int) {}
