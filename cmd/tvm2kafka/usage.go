package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseFlags parses a command's flags. --help prints usage to stdout (exit
// 0); an unknown flag or a stray argument prints a short error, the
// closest flag when there is one and a hint to stderr (exit 2). done tells
// the command to stop with code.
func parseFlags(fs *flag.FlagSet, args []string, usage func(io.Writer), stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		usage(stdout)
		return exitOK, true
	case err != nil:
		name, unknown := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
		if unknown {
			// The flag package names it with one dash whatever was typed.
			fmt.Fprintf(stderr, "tvm2kafka %s: flag provided but not defined: %s\n", fs.Name(), asTyped(args, name))
			if s := closestFlag(fs, strings.TrimLeft(name, "-")); s != "" {
				fmt.Fprintf(stderr, "Did you mean --%s?\n", s)
			}
		} else {
			fmt.Fprintf(stderr, "tvm2kafka %s: %v\n", fs.Name(), err)
		}
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "tvm2kafka %s: unexpected argument %q (flags only)\n", fs.Name(), fs.Arg(0))
	default:
		return exitOK, false
	}
	fmt.Fprintf(stderr, "Run 'tvm2kafka %s --help' for every flag.\n", fs.Name())
	return exitUsage, true
}

// asTyped is the unknown flag name as it stands in args: with the dashes
// the user typed (--frob, -frob), without its value.
func asTyped(args []string, name string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		flagName, _, _ := strings.Cut(a, "=")
		if strings.HasPrefix(flagName, "-") && strings.TrimLeft(flagName, "-") == name {
			return flagName
		}
	}
	return "-" + name
}

// closestFlag returns the defined flag nearest to name in edit distance,
// when it is near enough to be a typo.
func closestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", len(name)/3+2
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func printRunUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: tvm2kafka run [flags]")
	fmt.Fprintln(w, "\nTakes one snapshot of the Defender export and publishes it to Kafka, then exits.")
	fmt.Fprintln(w, "Every setting is a flag and an environment variable; the flag wins. Secrets can also be")
	fmt.Fprintln(w, "read from a file named by <VARIABLE>_FILE.")
	printSettings(w, settings())
	fmt.Fprintln(w, "\nExit status: 0 snapshot complete or export unchanged, 1 snapshot failed (abort markers written where")
	fmt.Fprintln(w, "start markers were) or another run is publishing, 2 bad configuration or usage.")
}
