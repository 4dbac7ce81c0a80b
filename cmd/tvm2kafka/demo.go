package main

import (
	"bytes"
	"context"
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
	list := declared[demoSettings]()
	usage := func(w io.Writer) {
		fmt.Fprintln(w, "Usage: tvm2kafka demo [flags]\n\nRuns the whole pipeline with everything embedded: no network, no credentials.")
		printSettings(w, list)
	}
	raw, code, done, _ := parseCommandLine("demo", list, args, func(string) (string, bool) { return "", false }, usage, stdout, stderr)
	if done {
		return code
	}
	var in demoSettings
	if err := joinErrors(decode(list, raw, &in)); err != nil {
		fmt.Fprintf(stderr, "tvm2kafka demo: %v\n", err)
		return exitUsage
	}
	d := in.Demo
	if d.Workers == 0 {
		d.Workers = runtime.NumCPU()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(stdout, "tvm2kafka demo: %d devices in %d parts → embedded Kafka, %d partitions\n", d.Devices, d.Parts, d.Partitions)
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
	opts := synth.Options{Devices: d.Devices, Parts: d.Parts, Seed: int64(d.Seed)}
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

	raw = defaultValues()
	for k, v := range map[string]string{
		"MDE_API_URL":            defender.URL(),
		"MDE_ACCESS_TOKEN":       demoToken,
		"KAFKA_BROKERS":          strings.Join(brokers, ","),
		"KAFKA_TOPIC_PARTITIONS": strconv.Itoa(d.Partitions),
		"KAFKA_COMPRESSION":      d.Compression,
		"TVM2KAFKA_WORKERS":      strconv.Itoa(d.Workers),
		"LOG_LEVEL":              d.LogLevel,
		"LOG_FORMAT":             d.LogFormat,
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
	res, code := out.Res, exitCode(out)

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
	printDemoSummary(stdout, cfg.kafka.Topic, rep, run, d.Devices)
	if code != exitOK {
		return code
	}
	if run == nil || !run.Complete || run.Records != int64(d.Devices) {
		return exitFailed
	}
	return exitOK
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
