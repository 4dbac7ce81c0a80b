package main

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// peakRSS returns the peak resident set size of this process in bytes:
// VmHWM of /proc/self/status, the high-water mark of this program's own
// memory. getrusage's ru_maxrss is only the fallback: Linux carries it
// over execve, so a process started by a large parent (Go's os/exec
// starts children with vfork semantics) would report the parent's size.
func peakRSS() int64 {
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range bytes.Split(status, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
				f := bytes.Fields(v) // "12345", "kB"
				if len(f) == 2 && string(f[1]) == "kB" {
					if kb, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
						return kb * 1024
					}
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}
