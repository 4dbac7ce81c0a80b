package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Contenders, in the order the table lists them.
var contenders = []string{"tvm2kafka", "kcat", "dry-run", "gunzip"}

// sample is one timed run: its round, wall seconds, peak RSS (KiB, 0 = not
// measured) and the records/s the contender reported itself (0 = none):
// tvm2kafka's summary line, the Java producer's final line.
type sample struct {
	round int
	wall  float64
	rssKB float64
	rps   float64
}

func cmdReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	dir := fs.String("dir", "", "data directory (for records and bytes)")
	results := fs.String("results", "", "results file: lines `contender round wall_seconds max_rss_kb [records_per_s]` (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *results == "" {
		return usageError{fmt.Errorf("report: --dir and --results are required")}
	}
	l, err := readLayout(*dir)
	if err != nil {
		return err
	}
	f, err := os.Open(*results)
	if err != nil {
		return fmt.Errorf("open results: %w", err)
	}
	defer f.Close()
	samples, err := readResults(f)
	if err != nil {
		return err
	}
	return report(stdout, l, samples)
}

func readResults(r io.Reader) (map[string][]sample, error) {
	out := make(map[string][]sample)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 4 && len(f) != 5 {
			return nil, fmt.Errorf("results line %d: want 4 or 5 fields, got %q", n, sc.Text())
		}
		round, err0 := strconv.Atoi(f[1])
		wall, err1 := strconv.ParseFloat(f[2], 64)
		rss, err2 := strconv.ParseFloat(f[3], 64)
		var rps float64
		var err3 error
		if len(f) == 5 {
			rps, err3 = strconv.ParseFloat(f[4], 64)
		}
		if err0 != nil || err1 != nil || err2 != nil || err3 != nil || wall <= 0 || rps < 0 {
			return nil, fmt.Errorf("results line %d: bad numbers in %q", n, sc.Text())
		}
		out[f[0]] = append(out[f[0]], sample{round: round, wall: wall, rssKB: rss, rps: rps})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return out, nil
}

// median of xs (sorted in place).
func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

type stats struct {
	rounds                    int
	wallMed, wallMin, wallMax float64
	rssMed, rssMax            float64 // MB
}

func summarize(s []sample) stats {
	var st stats
	st.rounds = len(s)
	walls := make([]float64, len(s))
	rss := make([]float64, len(s))
	for i, x := range s {
		walls[i] = x.wall
		rss[i] = x.rssKB / 1024
	}
	st.wallMed = median(walls)
	st.wallMin, st.wallMax = walls[0], walls[len(walls)-1]
	st.rssMed = median(rss)
	st.rssMax = rss[len(rss)-1]
	return st
}

func report(w io.Writer, l Layout, samples map[string][]sample) error {
	fmt.Fprintf(w, "\n%d records (%.1f MB decompressed, %.1f MB gzip) in %d parts\n\n",
		l.Records, float64(l.Bytes)/1e6, float64(l.GzipBytes)/1e6, l.Parts)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "contender\trounds\twall s median\t(min–max)\trecords/s\t(min–max)\tMB/s\tpeak RSS MB\t(max)\t")
	st := make(map[string]stats)
	for _, c := range contenders {
		s := samples[c]
		if len(s) == 0 {
			continue
		}
		x := summarize(s)
		st[c] = x
		rate := func(sec float64) float64 { return float64(l.Records) / sec }
		rss, rssMax := "-", "-"
		if x.rssMax > 0 {
			rss, rssMax = fmt.Sprintf("%.0f", x.rssMed), fmt.Sprintf("(%.0f)", x.rssMax)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t(%.2f–%.2f)\t%.0f\t(%.0f–%.0f)\t%.1f\t%s\t%s\t\n",
			c, x.rounds, x.wallMed, x.wallMin, x.wallMax, rate(x.wallMed), rate(x.wallMax), rate(x.wallMin),
			float64(l.Bytes)/1e6/x.wallMed, rss, rssMax)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintln(w)
	if a, ok := st["tvm2kafka"]; ok {
		if b, ok := st["kcat"]; ok {
			fmt.Fprintf(w, "tvm2kafka / kcat wall time (medians): %.2f   (target ≤ 1.00)\n", a.wallMed/b.wallMed)
		}
		if a.rssMax > 0 {
			fmt.Fprintf(w, "tvm2kafka peak RSS (max of rounds):   %.0f MB (target ≤ 64 MB)\n", a.rssMax)
		}
	}
	if a, ok := st["dry-run"]; ok {
		if b, ok := st["gunzip"]; ok {
			fmt.Fprintf(w, "dry-run / parallel gunzip wall time:  %.2f   → dry-run at %.0f%% of gunzip's speed (target ≥ 80%%)\n",
				a.wallMed/b.wallMed, 100*b.wallMed/a.wallMed)
		}
	}
	speed := ""
	if g, ok := st["gunzip"]; ok && g.wallMed > 0 {
		speed = fmt.Sprintf("machine speed: parallel gunzip %.0f MB/s (median of %d rounds; a slow day shows here, a regression does not)", float64(l.Bytes)/1e6/g.wallMed, g.rounds)
	}
	return javaReport(w, samples, speed)
}

// javaReport compares, round by round, the records/s tvm2kafka reports in
// its summary line with the records/s Kafka's own Java producer benchmark
// (ProducerPerformance) reports, and prints the median of the per-round
// ratios, with the machine's speed (the parallel gunzip row's MB/s) so
// that a reader can tell a slow day from a regression.
func javaReport(w io.Writer, samples map[string][]sample, speed string) error {
	java := map[int]float64{}
	for _, s := range samples["java"] {
		if s.rps > 0 {
			java[s.round] = s.rps
		}
	}
	if len(java) == 0 {
		return nil
	}
	type pair struct {
		round     int
		java, tvm float64
	}
	var pairs []pair
	for _, s := range samples["tvm2kafka"] {
		if j, ok := java[s.round]; ok && s.rps > 0 {
			pairs = append(pairs, pair{s.round, j, s.rps})
		}
	}
	if len(pairs) == 0 {
		return fmt.Errorf("report: the Java producer ran, but no round has tvm2kafka's records/s to compare with")
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].round < pairs[j].round })
	fmt.Fprintln(w, "\ntvm2kafka run against Kafka's Java producer (ProducerPerformance), records/s as each reports it:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tJava producer\ttvm2kafka\ttvm2kafka / Java\t")
	ratios := make([]float64, len(pairs))
	javas := make([]float64, len(pairs))
	tvms := make([]float64, len(pairs))
	for i, p := range pairs {
		ratios[i], javas[i], tvms[i] = p.tvm/p.java, p.java, p.tvm
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t\n", p.round, p.java, p.tvm, ratios[i])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	med := median(ratios)
	fmt.Fprintf(w, "tvm2kafka / Java producer, median of %d per-round ratios: %.2f (%.2f–%.2f)   (target ≥ 1.20)\n",
		len(ratios), med, ratios[0], ratios[len(ratios)-1])
	fmt.Fprintf(w, "medians: Java producer %.0f records/s, tvm2kafka %.0f records/s\n", median(javas), median(tvms))
	if speed != "" {
		fmt.Fprintln(w, speed)
	}
	return nil
}
