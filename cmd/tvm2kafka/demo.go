package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tvm2kafka/tvm2kafka/consumer"
	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/synth"
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
	export, err := lookupExport("--export", d.Export)
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka demo: %v\n", err)
		return exitUsage
	}
	records := d.Devices * synth.RowsPerDevice(export.Name)
	if d.Workers == 0 {
		d.Workers = runtime.NumCPU()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(stdout, "tvm2kafka demo: %s, %d devices, %d records in %d parts → embedded Kafka, topic %s, %d partitions\n",
		export.Name, d.Devices, records, d.Parts, export.Topic(), d.Partitions)
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
	opts := synth.Options{Export: export.Name, Devices: records, Parts: d.Parts, Seed: int64(d.Seed)}
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
		ManifestOf: func(name string) ([]string, string, int) {
			if name != export.Name {
				return nil, "", http.StatusNotFound
			}
			return urls, layout.GeneratedTime, 0
		},
		Authorize: func(bearer string) bool { return bearer == demoToken },
	})
	defer defender.Close()

	raw = defaultValues()
	for k, v := range map[string]string{
		"MDE_API_URL":            defender.URL(),
		"MDE_ACCESS_TOKEN":       demoToken,
		"MDE_EXPORT":             export.Name,
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

	// Read the topic back as a consumer would: the consumer package's
	// Reader and its verdict, as `tvm2kafka verify` gives it.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r, err := consumer.NewReader(consumer.Config{Brokers: brokers, Topic: cfg.kafka.Topic,
		NewStage: func(int, consumer.Marker) consumer.Stage { return countOnly{} }})
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka demo: reading the topic back: %v\n", err)
		return exitFailed
	}
	defer r.Close()
	st, err := r.Read(rctx, consumer.Handler{})
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka demo: reading the topic back: %v\n", err)
		return exitFailed
	}
	v := st.Verdict()
	ok := v.Complete && v.RunID == res.RunID && v.Records == int64(records)
	printDemoSummary(stdout, cfg.kafka.Topic, v, res.RunID, records, ok)
	if code != exitOK {
		return code
	}
	if !ok {
		return exitFailed
	}
	return exitOK
}

func printDemoSummary(w io.Writer, topic string, v *consumer.Verdict, runID string, records int, ok bool) {
	fmt.Fprintf(w, "\nVerification of topic %s (read back with the consumer package, as tvm2kafka verify does):\n", topic)
	if v.RunID == "" || v.RunID != runID {
		fmt.Fprintln(w, "  no snapshot of this run was found in the topic: INCOMPLETE")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partition\trecords\tsnapshot-start\tsnapshot-end\t")
	started, ended, aborted := 0, 0, 0
	for _, p := range v.Partitions {
		mine := p.RunID == runID
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t\n", p.Partition, p.Records, yesNo(mine && p.Start), yesNo(mine && p.End))
		if mine && p.Start {
			started++
		}
		if mine && p.End {
			ended++
		}
		if mine && p.Aborted {
			aborted++
		}
	}
	tw.Flush()
	n := len(v.Partitions)
	fmt.Fprintf(w, "  run %s, generatedTime %s, %d parts\n", v.RunID, v.GeneratedTime, v.Parts)
	fmt.Fprintf(w, "  markers: snapshot-start on %d/%d partitions, snapshot-end on %d/%d, snapshot-abort on %d\n",
		started, n, ended, n, aborted)
	fmt.Fprintf(w, "  records: %d read back, %d claimed by snapshot-end, %d generated, %d rejected\n",
		v.Records, v.Claimed, records, v.Rejected)
	for i, p := range v.Problems {
		if i == 10 {
			fmt.Fprintf(w, "  … %d more problems\n", len(v.Problems)-10)
			break
		}
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	if ok {
		fmt.Fprintln(w, "  snapshot COMPLETE: every partition bracketed by start and end markers with its partitionRecords records, every record counted")
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
