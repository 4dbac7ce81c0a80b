package main

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Memory a run needs, measured with bench/workers.sh at 1–32 workers
// (docs/operations.md, "Memory and workers"): peak RSS is about 51–57 MB whatever the
// worker count — the per-partition batches, bounded to 32 MB for the whole
// topic, dominate; a worker adds its gzip state, its blob stream and its
// line buffer, which holds at most one line of KAFKA_MAX_MESSAGE_BYTES.
// The budgets below cover that worst case with a margin, so that a run
// sized from them stays under the container's limit.
const (
	// memPerWorkerBase plus the longest line is the budget of one worker
	// (part in flight).
	memPerWorkerBase = 3 << 20
	// memBase is the budget of everything else (runtime, batches of every
	// partition, Kafka and HTTP clients).
	memBase = 64 << 20
	// memBudgetShare is the share of the memory limit that workers are
	// sized for; the rest is headroom for the garbage collector.
	memBudgetShare = 0.8
	// goMemLimitShare of the container's limit becomes GOMEMLIMIT when it
	// is not set.
	goMemLimitShare = 0.9
	maxAutoWorkers  = 256
)

// resources is what the process may use: the input of the default of
// TVM2KAFKA_WORKERS and of GOMEMLIMIT.
type resources struct {
	// procs is GOMAXPROCS: the CPUs of the machine, or of the container's
	// CPU limit (Go 1.25 and newer read the cgroup's cpu.max).
	procs int
	// cgroupMemory is the memory limit of the process's cgroup (v2
	// memory.max, v1 memory.limit_in_bytes, the lowest along the path);
	// 0 when there is none.
	cgroupMemory int64
	// goMemLimit is the runtime's soft memory limit (GOMEMLIMIT); 0 when
	// there is none.
	goMemLimit int64
}

// memoryLimit is the lower of the cgroup limit and GOMEMLIMIT; 0 = none.
func (r resources) memoryLimit() int64 {
	switch {
	case r.cgroupMemory > 0 && r.goMemLimit > 0:
		return min(r.cgroupMemory, r.goMemLimit)
	case r.cgroupMemory > 0:
		return r.cgroupMemory
	}
	return r.goMemLimit
}

// autoWorkers is the default of TVM2KAFKA_WORKERS: one worker per usable
// CPU, but no more than the memory limit holds with lines of up to
// maxLine bytes (at least one).
func autoWorkers(r resources, maxLine int) int {
	w := max(r.procs, 1)
	if lim := r.memoryLimit(); lim > 0 {
		fit := int((float64(lim)*memBudgetShare - memBase) / float64(memPerWorkerBase+max(maxLine, 0)))
		w = min(w, max(fit, 1))
	}
	return min(w, maxAutoWorkers)
}

// detectResources reads the limits of this process.
func detectResources() resources {
	r := resources{procs: runtime.GOMAXPROCS(0)}
	if cg, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		r.cgroupMemory = cgroupMemoryLimit("/sys/fs/cgroup", cg)
	}
	if l := debug.SetMemoryLimit(-1); l > 0 && l != math.MaxInt64 {
		r.goMemLimit = l
	}
	return r
}

// unlimited is what cgroup v1 reports when no limit is set (the largest
// page-aligned int64), and anything beyond.
const unlimited = 1 << 62

// cgroupMemoryLimit returns the memory limit of the cgroup described by
// procSelfCgroup (the content of /proc/self/cgroup), with the cgroup file
// systems mounted under root: the lowest limit from the process's cgroup
// up to the root, in cgroup v2 (memory.max) or v1
// (memory/memory.limit_in_bytes). 0 when none is set or readable.
func cgroupMemoryLimit(root string, procSelfCgroup []byte) int64 {
	var best int64
	consider := func(file string) {
		b, err := os.ReadFile(file)
		if err != nil {
			return
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= unlimited {
			return
		}
		if best == 0 || n < best {
			best = n
		}
	}
	walk := func(dir, p, file string) {
		// In a container with its own cgroup namespace the path is "/"
		// and the files are at the mount's root; otherwise the path is
		// below the mount. Ancestors may hold a lower limit.
		for p = path.Clean("/" + p); ; p = path.Dir(p) {
			consider(path.Join(dir, p, file))
			if p == "/" {
				return
			}
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(procSelfCgroup))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "": // cgroup v2
			if _, err := os.Stat(path.Join(root, "cgroup.controllers")); err == nil {
				walk(root, f[2], "memory.max")
			}
		case hasController(f[1], "memory"): // cgroup v1
			walk(path.Join(root, "memory"), f[2], "memory.limit_in_bytes")
		}
	}
	return best
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// applyMemoryLimit sets the runtime's soft memory limit to 90 % of the
// container's when GOMEMLIMIT is not set, so that the garbage collector
// works harder before the kernel's OOM killer ends the run without a
// snapshot-abort. It returns the limit in force (0 = none) and whether it
// set it; the first log line of a run shows both.
func applyMemoryLimit(r resources) (limit int64, set bool) {
	if r.goMemLimit > 0 {
		return r.goMemLimit, false
	}
	if r.cgroupMemory <= 0 {
		return 0, false
	}
	lim := int64(float64(r.cgroupMemory) * goMemLimitShare)
	debug.SetMemoryLimit(lim)
	return lim, true
}
