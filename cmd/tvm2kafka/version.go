package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set at build time, e.g.
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.revision=$(git rev-parse HEAD)" ./cmd/tvm2kafka
//
// (the Dockerfile does it from its VERSION and REVISION build arguments).
// Left empty, they come from the module's build information.
var (
	version  string
	revision string
)

// buildVersion is what `tvm2kafka version` prints and every run logs.
type buildVersion struct {
	Version   string // -ldflags main.version, else the module version, else "(devel)"
	GoVersion string
	Revision  string // -ldflags main.revision, else vcs.revision, else "unknown"
	Modified  bool   // built from a work tree with uncommitted changes
	Time      string // vcs.time, "" when unknown
}

// currentVersion reads the build stamp and runtime/debug.ReadBuildInfo.
func currentVersion() buildVersion {
	v := buildVersion{Version: version, GoVersion: runtime.Version(), Revision: revision}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Revision == "" {
					v.Revision = s.Value
				}
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "vcs.time":
				v.Time = s.Value
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	if v.Revision == "" {
		v.Revision = "unknown"
	}
	return v
}

// cmdVersion prints the version, the Go version and the commit.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
			fmt.Fprintln(stdout, "Usage: tvm2kafka version\n\nPrints the version, the Go version and the commit it was built from.")
			return exitOK
		}
		fmt.Fprintf(stderr, "tvm2kafka version: unexpected argument %q\n", args[0])
		return exitUsage
	}
	v := currentVersion()
	fmt.Fprintf(stdout, "tvm2kafka %s\n", v.Version)
	fmt.Fprintf(stdout, "go        %s\n", v.GoVersion)
	commit := v.Revision
	if v.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(stdout, "commit    %s\n", commit)
	if v.Time != "" {
		fmt.Fprintf(stdout, "committed %s\n", v.Time)
	}
	return exitOK
}
