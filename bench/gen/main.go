// Command gen prepares and serves the data of the tvm2kafka benchmark
// (bench/run.sh, README "Performance"):
//
//	gen gen --records N --parts N [--seed S] [--export NAME] --out DIR
//	    writes the synthetic export's gzip parts (internal/synth) to DIR/parts,
//	    the same records pre-keyed as "DeviceId<TAB>line" to DIR/keyed (for
//	    kcat -K '\t'), and DIR/layout.json; a complete DIR is reused as is
//	gen upload --dir DIR [--blob URL] [--account NAME --key KEY]
//	    uploads the parts to Azure Blob storage (Azurite by default) and writes
//	    read-only service SAS URLs to DIR/urls.txt
//	gen serve-manifest --dir DIR [--addr 127.0.0.1:0]
//	    serves a fake Defender API answering GET /api/machines/<the layout's export>
//	    with those URLs; prints its base URL on the first line of stdout and
//	    runs until SIGINT/SIGTERM
//	gen create-topic --brokers B --topic T [--partitions 6]
//	gen count --brokers B --topic T
//	    prints the number of messages in the topic
//	gen delete-topic --brokers B --topic T
//	gen report --dir DIR --results FILE
//	    prints the benchmark table from the results file
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1], os.Args[2:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: gen gen|upload|serve-manifest|create-topic|count|delete-topic|report [flags]  (gen <command> -h for flags)")
}

func run(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	switch cmd {
	case "gen":
		return cmdGen(ctx, args, stdout)
	case "upload":
		return cmdUpload(ctx, args, stdout)
	case "serve-manifest":
		return cmdServeManifest(ctx, args, stdout)
	case "create-topic":
		return cmdCreateTopic(ctx, args, stdout)
	case "count":
		return cmdCount(ctx, args, stdout)
	case "delete-topic":
		return cmdDeleteTopic(ctx, args, stdout)
	case "report":
		return cmdReport(args, stdout)
	case "-h", "--help", "help":
		usage(stdout)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}

func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())}
	}
	return nil
}
