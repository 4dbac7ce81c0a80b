package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/synth"
	"github.com/tvm2kafka/tvm2kafka/internal/verify"
)

// demoToken is the bearer token the embedded Defender API accepts.
const demoToken = "demo-token"

// cmdDemo runs the real pipeline against an in-process Kafka-compatible
// broker (kfake), a local Defender API and a local blob store serving a
// synthetic export, then reads the topic back and verifies it.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	devices := fs.Int("devices", 10000, "devices in the synthetic export")
	parts := fs.Int("parts", 4, "part files of the synthetic export")
	partitions := fs.Int("partitions", 6, "partitions of the demo topic")
	workers := fs.Int("workers", runtime.NumCPU(), "part files processed at once")
	compression := fs.String("compression", "lz4", "none | gzip | snappy | lz4 | zstd")
	seed := fs.Int64("seed", 1, "seed of the synthetic export")
	logLevel := fs.String("log-level", "info", "trace | debug | info | warn | error")
	logFormat := fs.String("log-format", "console", "json | console")
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: tvm2kafka demo [flags]\n\nRuns the whole pipeline with everything embedded: no network, no credentials.")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if code, done := parseFlags(fs, args, usage, stdout, stderr); done {
		return code
	}
	if *devices < 0 || *parts < 1 || *partitions < 1 {
		fmt.Fprintln(stderr, "tvm2kafka demo: --devices must be ≥ 0, --parts and --partitions ≥ 1")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(stdout, "tvm2kafka demo: %d devices in %d parts → embedded Kafka, %d partitions\n", *devices, *parts, *partitions)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka demo: embedded broker: %v\n", err)
		return exitFailed
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	// The synthetic export in an embedded blob store.
	store := fakes.NewBlobStore()
	defer store.Close()
	opts := synth.Options{Devices: *devices, Parts: *parts, Seed: *seed}
	layout := synth.Plan(opts)
	var urls []string
	var buf bytes.Buffer
	for _, p := range layout.Parts {
		buf.Reset()
		if _, err := synth.WritePart(&buf, opts, p); err != nil {
			fmt.Fprintf(stderr, "tvm2kafka demo: generating %s: %v\n", p.Name, err)
			return exitFailed
		}
		store.Put(layout.Container, p.Name, bytes.Clone(buf.Bytes()))
		urls = append(urls, store.SASURL(layout.Container, p.Name, time.Now().Add(3*time.Hour)))
	}
	defender := fakes.NewDefender(fakes.DefenderConfig{
		Manifest:  func() ([]string, string) { return urls, layout.GeneratedTime },
		Authorize: func(bearer string) bool { return bearer == demoToken },
	})
	defer defender.Close()

	raw := defaultValues()
	for k, v := range map[string]string{
		"MDE_API_URL":            defender.URL(),
		"MDE_ACCESS_TOKEN":       demoToken,
		"KAFKA_BROKERS":          strings.Join(brokers, ","),
		"KAFKA_TOPIC_PARTITIONS": strconv.Itoa(*partitions),
		"KAFKA_COMPRESSION":      *compression,
		"TVM2KAFKA_WORKERS":      strconv.Itoa(*workers),
		"LOG_LEVEL":              *logLevel,
		"LOG_FORMAT":             *logFormat,
	} {
		raw[k] = v
	}
	cfg, err := parseConfig(raw)
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka demo: %v\n", err)
		return exitUsage
	}
	term := newTerminal(stderr)
	log := newLogger(cfg, term)
	out := snapshot(ctx, cfg, runEnv{command: "demo", progress: newProgress(term, 10*time.Second)}, log)
	res, code := out.res, out.code

	// Read the topic back as a consumer would, with another client.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	msgs, n, err := verify.ReadTopic(rctx, brokers, cfg.kafka.Topic)
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka demo: reading the topic back: %v\n", err)
		return exitFailed
	}
	rep := verify.Check(msgs, n)
	run := rep.Run(res.RunID)
	printDemoSummary(stdout, cfg.kafka.Topic, rep, run, *devices)
	if code != exitOK {
		return code
	}
	if run == nil || !run.Complete || run.Records != int64(*devices) {
		return exitFailed
	}
	return exitOK
}

// defaultValues are the defaults of every setting, as rawValues.
func defaultValues() rawValues {
	v := rawValues{}
	for _, s := range settings() {
		if s.env != "" {
			v[s.env] = s.def
		}
	}
	return v
}

func printDemoSummary(w io.Writer, topic string, rep *verify.Report, run *verify.Run, devices int) {
	fmt.Fprintf(w, "\nVerification of topic %s (read back with an independent client):\n", topic)
	if run == nil {
		fmt.Fprintln(w, "  no message of this run was found in the topic: INCOMPLETE")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partition\trecords\tsnapshot-start\tsnapshot-end\t")
	for p, n := range run.PerPartition {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t\n", p, n, yesNo(run.StartIn[p]), yesNo(run.EndIn[p]))
	}
	tw.Flush()
	fmt.Fprintf(w, "  run %s, generatedTime %s, %d parts\n", run.RunID, run.GeneratedTime, run.Parts)
	fmt.Fprintf(w, "  markers: snapshot-start on %d/%d partitions, snapshot-end on %d/%d, snapshot-abort on %d\n",
		run.Started, rep.Partitions, run.Ended, rep.Partitions, run.Aborted)
	fmt.Fprintf(w, "  records: %d read back, %d claimed by snapshot-end, %d devices generated, %d rejected\n",
		run.Records, run.EndRecords, devices, run.EndRejected)
	for i, p := range run.Problems {
		if i == 10 {
			fmt.Fprintf(w, "  … %d more problems\n", len(run.Problems)-10)
			break
		}
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if run.Complete && run.Records == int64(devices) {
		fmt.Fprintln(w, "  snapshot COMPLETE: every partition bracketed by start and end markers, every device once")
	} else {
		fmt.Fprintln(w, "  snapshot INCOMPLETE")
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
