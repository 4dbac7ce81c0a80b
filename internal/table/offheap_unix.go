//go:build unix

package table

import (
	"fmt"
	"syscall"
	"unsafe"
)

// offHeap returns a slice of n zero values of T in memory mapped outside
// the Go heap, and the function that unmaps it. T must hold no pointers.
//
// The device state of a large table is tens of megabytes of pointer-free
// entries that live for the whole run: on the Go heap the collector would
// let the heap grow to twice the live data before collecting, so the
// state would count twice in the process's peak RSS. Mapped memory is
// committed page by page as it is written and returned when unmapped.
func offHeap[T any](n int) ([]T, func(), error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, nil, fmt.Errorf("table: mapping %d bytes for the device state: %w", size, err)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), n), func() { _ = syscall.Munmap(b) }, nil
}

// trimOffHeap returns to the system the pages of s (from offHeap) past its
// first keep elements; they read as zero if touched again.
func trimOffHeap[T any](s []T, keep int) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	page := syscall.Getpagesize()
	from := (keep*size + page - 1) / page * page
	total := len(s) * size
	if len(s) == 0 || from >= total {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), total)
	_ = syscall.Madvise(b[from:], syscall.MADV_DONTNEED)
}
