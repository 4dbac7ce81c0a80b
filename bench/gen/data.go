package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"

	"github.com/tvm2kafka/tvm2kafka/internal/synth"
)

// Layout is DIR/layout.json: what gen wrote.
type Layout struct {
	Export        string      `json:"export,omitempty"` // "" = InfoGatheringExport
	Records       int         `json:"records"`
	Parts         int         `json:"parts"`
	Seed          int64       `json:"seed"`
	ChangeEvery   int         `json:"changeEvery,omitempty"`
	GeneratedTime string      `json:"generatedTime"`
	Container     string      `json:"container"`
	Bytes         int64       `json:"bytes"` // decompressed bytes of all parts, newlines included
	GzipBytes     int64       `json:"gzipBytes"`
	Files         []PartFiles `json:"files"`
}

// PartFiles is one part: its blob name and its two local files.
type PartFiles struct {
	Blob    string `json:"blob"`
	File    string `json:"file"`  // DIR-relative gzip part
	Keyed   string `json:"keyed"` // DIR-relative gzip of "DeviceId\tline" lines
	Devices int    `json:"devices"`
	Bytes   int64  `json:"bytes"`
}

func readLayout(dir string) (Layout, error) {
	var l Layout
	b, err := os.ReadFile(filepath.Join(dir, "layout.json"))
	if err != nil {
		return l, fmt.Errorf("read layout: %w", err)
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return l, fmt.Errorf("parse %s: %w", filepath.Join(dir, "layout.json"), err)
	}
	return l, nil
}

func cmdGen(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	records := fs.Int("records", 1000000, "devices in the snapshot")
	parts := fs.Int("parts", 8, "part files")
	seed := fs.Int64("seed", 1, "generator seed")
	export := fs.String("export", "", "the export to generate (schema.Exports; default InfoGatheringExport)")
	changeEvery := fs.Int("change-every", 0, "a later export of the same devices: every N-th device changed (its own container, generatedTime one hour later)")
	out := fs.String("out", "", "output directory (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *records < 0 || *parts < 1 {
		return usageError{fmt.Errorf("gen: --out is required, --records ≥ 0, --parts ≥ 1")}
	}
	if l, err := readLayout(*out); err == nil && l.Records == *records && l.Parts == *parts && l.Seed == *seed && l.ChangeEvery == *changeEvery && l.Export == *export {
		fmt.Fprintf(stdout, "reusing %s: %d records in %d parts, %.1f MB\n", *out, l.Records, l.Parts, float64(l.Bytes)/1e6)
		return nil
	}
	start := time.Now()
	l, err := generate(ctx, *out, synth.Options{Export: *export, Devices: *records, Parts: *parts, Seed: *seed, ChangeEvery: *changeEvery})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d records in %d parts, %.1f MB (%.1f MB gzip) in %s\n",
		*out, l.Records, l.Parts, float64(l.Bytes)/1e6, float64(l.GzipBytes)/1e6, time.Since(start).Round(time.Millisecond))
	return nil
}

// generate writes the parts, their keyed twins and layout.json (last, so a
// layout.json means a complete directory).
func generate(ctx context.Context, dir string, opts synth.Options) (Layout, error) {
	_ = os.Remove(filepath.Join(dir, "layout.json"))
	for _, sub := range []string{"parts", "keyed"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return Layout{}, fmt.Errorf("clean %s: %w", sub, err)
		}
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return Layout{}, fmt.Errorf("mkdir: %w", err)
		}
	}
	plan := synth.Plan(opts)
	l := Layout{Export: opts.Export, Records: opts.Devices, Parts: len(plan.Parts), Seed: opts.Seed, ChangeEvery: opts.ChangeEvery,
		GeneratedTime: plan.GeneratedTime, Container: plan.Container, Files: make([]PartFiles, len(plan.Parts))}
	if opts.ChangeEvery > 0 {
		// A later export: other blobs, a later generatedTime (the records'
		// own times stay those of the first export).
		l.Container += fmt.Sprintf("-c%d", opts.ChangeEvery)
		if gt, err := time.Parse(time.RFC3339, plan.GeneratedTime); err == nil {
			l.GeneratedTime = gt.Add(time.Hour).Format(time.RFC3339)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, p := range plan.Parts {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			pf, err := writePart(dir, i, opts, p)
			l.Files[i] = pf
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Layout{}, err
	}
	for _, f := range l.Files {
		l.Bytes += f.Bytes
		st, err := os.Stat(filepath.Join(dir, f.File))
		if err != nil {
			return Layout{}, fmt.Errorf("stat part: %w", err)
		}
		l.GzipBytes += st.Size()
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return Layout{}, fmt.Errorf("encode layout: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "layout.json"), append(b, '\n'), 0o644); err != nil {
		return Layout{}, fmt.Errorf("write layout: %w", err)
	}
	return l, nil
}

// writePart writes part i and then its keyed twin, made by reading the
// part back, so both hold byte-identical lines.
func writePart(dir string, i int, opts synth.Options, p synth.PartSpec) (PartFiles, error) {
	pf := PartFiles{
		Blob:    p.Name,
		File:    filepath.Join("parts", fmt.Sprintf("part-%05d.json.gz", i)),
		Keyed:   filepath.Join("keyed", fmt.Sprintf("part-%05d.tsv.gz", i)),
		Devices: p.Devices,
	}
	f, err := os.Create(filepath.Join(dir, pf.File))
	if err != nil {
		return pf, fmt.Errorf("create part: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err := synth.WritePart(bw, opts, p); err != nil {
		f.Close()
		return pf, err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return pf, fmt.Errorf("write part: %w", err)
	}
	if err := f.Close(); err != nil {
		return pf, fmt.Errorf("close part: %w", err)
	}
	n, err := writeKeyed(filepath.Join(dir, pf.File), filepath.Join(dir, pf.Keyed))
	pf.Bytes = n
	return pf, err
}

// writeKeyed turns a gzip part into a gzip file of "DeviceId\tline" lines
// and returns the decompressed size of the part.
func writeKeyed(partPath, keyedPath string) (int64, error) {
	in, err := os.Open(partPath)
	if err != nil {
		return 0, fmt.Errorf("open part: %w", err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("gunzip %s: %w", partPath, err)
	}
	out, err := os.Create(keyedPath)
	if err != nil {
		return 0, fmt.Errorf("create keyed: %w", err)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	zw := gzip.NewWriter(bw)
	br := bufio.NewReaderSize(zr, 1<<20)
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		total += int64(len(line))
		if len(bytes.TrimSpace(line)) > 0 {
			id, kerr := deviceID(line)
			if kerr != nil {
				out.Close()
				return total, fmt.Errorf("%s: %w", partPath, kerr)
			}
			zw.Write(id)
			zw.Write([]byte{'\t'})
			if _, werr := zw.Write(line); werr != nil {
				out.Close()
				return total, fmt.Errorf("write keyed: %w", werr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			out.Close()
			return total, fmt.Errorf("read %s: %w", partPath, err)
		}
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return total, fmt.Errorf("close keyed: %w", err)
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return total, fmt.Errorf("write keyed: %w", err)
	}
	return total, out.Close()
}

var idPrefix = []byte(`{"DeviceId":"`)

// deviceID returns the DeviceId of a synthetic record, which always
// starts the line.
func deviceID(line []byte) ([]byte, error) {
	if !bytes.HasPrefix(line, idPrefix) || len(line) < len(idPrefix)+41 || line[len(idPrefix)+40] != '"' {
		return nil, fmt.Errorf("line does not start with a DeviceId: %.60q", line)
	}
	return line[len(idPrefix) : len(idPrefix)+40], nil
}
