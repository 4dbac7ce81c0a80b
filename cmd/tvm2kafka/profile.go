package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/rs/zerolog"
)

// profiles are the optional runtime/pprof profiles of one `run`
// (TVM2KAFKA_CPU_PROFILE, TVM2KAFKA_MEM_PROFILE): read them with
// `go tool pprof -top tvm2kafka FILE`.
type profiles struct {
	cpu     *os.File
	memPath string
}

// startProfiles starts the CPU profile into cpuPath when it is set and
// remembers memPath for stop. Both files are created now, so that a path
// that cannot be written is reported before any network call.
func startProfiles(cpuPath, memPath string) (*profiles, error) {
	p := &profiles{memPath: memPath}
	if memPath != "" {
		f, err := os.Create(memPath)
		if err != nil {
			return nil, fmt.Errorf("TVM2KAFKA_MEM_PROFILE: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("TVM2KAFKA_MEM_PROFILE: %w", err)
		}
	}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return nil, fmt.Errorf("TVM2KAFKA_CPU_PROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("TVM2KAFKA_CPU_PROFILE: %w", err)
		}
		p.cpu = f
	}
	return p, nil
}

// stop ends the CPU profile and writes the memory profile: the "allocs"
// profile, which holds both what was allocated over the whole run
// (-sample_index=alloc_space / alloc_objects) and what is still in use
// (inuse_space, the default of go tool pprof).
func (p *profiles) stop(log zerolog.Logger) {
	if p == nil {
		return
	}
	if p.cpu != nil {
		pprof.StopCPUProfile()
		if err := p.cpu.Close(); err != nil {
			log.Warn().Err(err).Msg("writing the CPU profile")
		} else {
			log.Info().Str("file", p.cpu.Name()).Msg("CPU profile written")
		}
	}
	if p.memPath != "" {
		if err := writeMemProfile(p.memPath); err != nil {
			log.Warn().Err(err).Msg("writing the memory profile")
		} else {
			log.Info().Str("file", p.memPath).Msg("memory profile written")
		}
	}
}

func writeMemProfile(path string) error {
	runtime.GC() // in-use figures as of the end of the run
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
}
