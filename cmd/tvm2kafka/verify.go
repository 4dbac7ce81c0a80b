package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/tvm2kafka/tvm2kafka/consumer"
	"github.com/tvm2kafka/tvm2kafka/internal/redact"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
)

func printVerifyUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: tvm2kafka verify [--max-age DURATION] [--output text|json] [flags]")
	fmt.Fprintln(w, "\nReports the newest snapshot in KAFKA_TOPIC, read from the newest snapshot-start of each")
	fmt.Fprintln(w, "partition (not the whole topic): per partition its run id, markers and record count.")
	fmt.Fprintln(w, "It reads the Kafka and log settings of run (flag or environment variable; the flag wins).")
	printSettings(w, declared[verifySettings]())
	fmt.Fprintln(w, "\nExit status: 0 every partition holds snapshot-start and snapshot-end of one run with")
	fmt.Fprintln(w, "partitionRecords records of it between them (and it is not older than --max-age);")
	fmt.Fprintln(w, "1 otherwise, also when the topic holds no snapshot; 2 bad configuration or usage.")
}

// verifyOptions is the validated configuration of `tvm2kafka verify`.
type verifyOptions struct {
	kafka   wire.Config
	maxAge  time.Duration // 0: no age check
	json    bool
	timeout time.Duration
	log     *config // logLevel, logFormat, secretsSeen only
}

func cmdVerify(ctx context.Context, args []string, lookup lookupFunc, stdout, stderr io.Writer) int {
	opts, code := loadVerifyOptions(args, lookup, stdout, stderr)
	if opts == nil {
		return code
	}
	log := newLogger(opts.log, stderr)
	tlsCfg, err := opts.kafka.LoadTLS()
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka verify: configuration error:\n%v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()

	began := time.Now()
	r, err := consumer.NewReader(consumer.Config{
		Brokers:  opts.kafka.Brokers,
		Topic:    opts.kafka.Topic,
		TLS:      tlsCfg,
		SASL:     consumer.SASL{Mechanism: opts.kafka.SASLMechanism, Username: opts.kafka.SASLUsername, Password: opts.kafka.SASLPassword, Token: opts.kafka.OAuthToken},
		NewStage: func(int, consumer.Marker) consumer.Stage { return countOnly{} },
	})
	if err != nil {
		fmt.Fprintf(stderr, "tvm2kafka verify: %v\n", err)
		return exitUsage
	}
	defer r.Close()
	st, err := r.Read(ctx, consumer.Handler{})
	if err != nil {
		if errors.Is(err, consumer.ErrNoTopic) {
			fmt.Fprintf(stderr, "tvm2kafka verify: topic %q does not exist: no snapshot\n", opts.kafka.Topic)
		} else {
			log.Error().Err(err).Strs("brokers", opts.kafka.Brokers).Str("topic", opts.kafka.Topic).Msg("verify: reading the topic failed")
		}
		return exitFailed
	}
	elapsed := time.Since(began)
	log.Debug().Int64("messages_read", st.Messages).Int64("bytes_read", st.Bytes).Int64("fetches", st.Fetches).
		Int("partitions", len(st.Partitions)).Dur("duration", elapsed).Msg("verify read")

	rep := newVerifyReport(st, opts.maxAge, time.Now())
	if opts.json {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "tvm2kafka verify: %v\n", err)
			return exitFailed
		}
		for _, p := range rep.problems {
			fmt.Fprintf(stderr, "tvm2kafka verify: %s\n", p)
		}
	} else {
		rep.printText(stdout, opts.kafka.Topic, st, elapsed)
	}
	if !rep.ok() {
		return exitFailed
	}
	return exitOK
}

// countOnly stages nothing: verify only counts (the Reader does).
type countOnly struct{}

func (countOnly) Add(*consumer.Record) error { return nil }

func loadVerifyOptions(args []string, lookup lookupFunc, stdout, stderr io.Writer) (*verifyOptions, int) {
	list := declared[verifySettings]()
	raw, code, done, err := parseCommandLine("verify", list, args, lookup, printVerifyUsage, stdout, stderr)
	if done {
		return nil, code
	}
	fail := func(err error) (*verifyOptions, int) {
		fmt.Fprintf(stderr, "tvm2kafka verify: configuration error:\n%v\n(see tvm2kafka verify --help)\n", redact.New(secretsOf(list, raw)...).String(err.Error()))
		return nil, exitUsage
	}
	if err != nil {
		return fail(err)
	}
	var in verifySettings
	errs := decode(list, raw, &in)
	opts := &verifyOptions{json: in.Verify.Output == "json", timeout: in.Verify.Timeout}
	if in.Verify.MaxAge != "" {
		if opts.maxAge, err = parseAge(in.Verify.MaxAge); err != nil {
			errs = append(errs, fmt.Errorf("--max-age: %w", err))
		}
	}
	opts.log = &config{logFormat: in.Logs.Format, secretsSeen: secretsOf(list, raw)}
	opts.log.logLevel, _ = zerolog.ParseLevel(in.Logs.Level)
	k, kerrs := kafkaConfig(in.Kafka)
	errs = append(errs, kerrs...)
	if e, err := lookupExport("MDE_EXPORT", in.Verify.Export); err != nil {
		errs = append(errs, err)
	} else {
		k.Topic = exportTopic(in.Kafka.Topic, e)
	}
	if len(k.Brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS: required (comma-separated host:port)"))
	}
	if len(errs) == 0 {
		if err := k.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	opts.kafka = k
	if err := joinErrors(errs); err != nil {
		return fail(err)
	}
	return opts, exitOK
}

// parseAge parses a Go duration, or a whole number of days such as "2d".
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a positive duration such as 26h or 2d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 26h or 2d", s)
	}
	return d, nil
}

// verifyReport is the newest snapshot of a topic. Its JSON form is what
// `verify --output json` prints: exactly these fields.
type verifyReport struct {
	Complete      bool              `json:"complete"`
	RunID         *string           `json:"runId"`
	GeneratedTime *string           `json:"generatedTime"`
	Records       int64             `json:"records"`
	Partitions    []verifyPartition `json:"partitions"`

	export   string
	parts    int
	claimed  int64 // records of the whole run, as snapshot-end states them
	rejected int64
	age      time.Duration // since generatedTime, when ageKnown
	ageKnown bool
	stale    bool // older than --max-age
	problems []string
}

type verifyPartition struct {
	Partition        int     `json:"partition"`
	RunID            *string `json:"runId"`
	Start            bool    `json:"start"`
	End              bool    `json:"end"`
	Records          int64   `json:"records"`
	PartitionRecords *int64  `json:"partitionRecords"`

	aborted bool
}

// ok is the exit status decision: complete and, with --max-age, fresh.
func (r *verifyReport) ok() bool { return r.Complete && !r.stale }

// newVerifyReport is the consumer's verdict on the newest snapshot, with
// the age check of --max-age.
func newVerifyReport(st *consumer.Status, maxAge time.Duration, now time.Time) *verifyReport {
	v := st.Verdict()
	rep := &verifyReport{Complete: v.Complete, Records: v.Records, Partitions: []verifyPartition{},
		export: v.Export, parts: v.Parts, claimed: v.Claimed, rejected: v.Rejected, problems: v.Problems}
	if v.RunID != "" {
		id, gt := v.RunID, v.GeneratedTime
		rep.RunID, rep.GeneratedTime = &id, &gt
	}
	for _, p := range v.Partitions {
		vp := verifyPartition{Partition: p.Partition, Start: p.Start, End: p.End, Records: p.Records, PartitionRecords: p.PartitionRecords, aborted: p.Aborted}
		if p.Start {
			id := p.RunID
			vp.RunID = &id
		}
		rep.Partitions = append(rep.Partitions, vp)
	}
	if rep.GeneratedTime != nil {
		if gt, err := time.Parse(time.RFC3339Nano, *rep.GeneratedTime); err == nil {
			rep.age, rep.ageKnown = now.Sub(gt), true
		}
		if maxAge > 0 {
			switch {
			case !rep.ageKnown:
				rep.stale = true
				rep.problems = append(rep.problems, fmt.Sprintf("generatedTime %q is not an RFC 3339 time: its age is unknown", *rep.GeneratedTime))
			case rep.age > maxAge:
				rep.stale = true
				rep.problems = append(rep.problems, fmt.Sprintf("generatedTime %s is %s old, older than --max-age %s",
					*rep.GeneratedTime, rep.age.Round(time.Minute), maxAge))
			}
		}
	}
	return rep
}

// printText prints the report as a table like the demo's verification.
func (r *verifyReport) printText(w io.Writer, topic string, st *consumer.Status, elapsed time.Duration) {
	if r.RunID == nil {
		fmt.Fprintf(w, "Topic %s: no snapshot (no partition holds a snapshot-start)\n", topic)
		fmt.Fprintf(w, "  read %d messages in %d partitions in %s\n", st.Messages, len(st.Partitions), elapsed.Round(time.Millisecond))
		return
	}
	fmt.Fprintf(w, "Topic %s: newest snapshot, read from the newest snapshot-start of each partition\n", topic)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "partition\trun id\tsnapshot-start\tsnapshot-end\trecords\tpartitionRecords\t")
	for _, p := range r.Partitions {
		run, end := "-", yesNo(p.End)
		if p.RunID != nil {
			run = *p.RunID
		}
		if p.aborted {
			end = "abort"
		}
		pr := "-"
		if p.PartitionRecords != nil {
			pr = strconv.FormatInt(*p.PartitionRecords, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t\n", p.Partition, run, yesNo(p.Start), end, p.Records, pr)
	}
	tw.Flush()
	gen := "?"
	if r.GeneratedTime != nil {
		gen = *r.GeneratedTime
	}
	age := ""
	if r.ageKnown {
		age = fmt.Sprintf(" (%s ago)", r.age.Round(time.Minute))
	}
	fmt.Fprintf(w, "  run %s, export %s, generatedTime %s%s, %d parts\n", *r.RunID, r.export, gen, age, r.parts)
	fmt.Fprintf(w, "  records: %d read, %d claimed by snapshot-end, %d rejected\n", r.Records, r.claimed, r.rejected)
	fmt.Fprintf(w, "  read %d messages (%.1f MB) in %d fetches, %s\n", st.Messages, float64(st.Bytes)/1e6, st.Fetches, elapsed.Round(time.Millisecond))
	for i, p := range r.problems {
		if i == 10 {
			fmt.Fprintf(w, "  … %d more problems\n", len(r.problems)-10)
			break
		}
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
	switch {
	case r.Complete && !r.stale:
		fmt.Fprintln(w, "  snapshot COMPLETE: every partition holds snapshot-start, snapshot-end and partitionRecords records of the run")
	case r.Complete:
		fmt.Fprintln(w, "  snapshot COMPLETE but TOO OLD")
	default:
		fmt.Fprintln(w, "  snapshot INCOMPLETE")
	}
}
