package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/internal/wire"
	"github.com/tvm2kafka/tvm2kafka/schema"
)

type lineKey struct {
	part int
	line int64
}

// expectation is what a snapshot must publish.
type expectation struct {
	records  map[lineKey]string // value by position
	rejected map[lineKey]string // raw line by position ("" when omitted)
}

func newExpectation() *expectation {
	return &expectation{records: map[lineKey]string{}, rejected: map[lineKey]string{}}
}

// partBuilder writes a part file line by line and records what is expected.
type partBuilder struct {
	idx  int
	b    strings.Builder
	line int64
	exp  *expectation
}

func (p *partBuilder) record(i int) {
	p.line++
	l := recordLine(p.idx, i)
	p.b.WriteString(l + "\n")
	p.exp.records[lineKey{p.idx, p.line}] = l
}

func (p *partBuilder) blank(s string) { p.line++; p.b.WriteString(s + "\n") }

func (p *partBuilder) bad(l string, dlqValue string) {
	p.line++
	p.b.WriteString(l + "\n")
	p.exp.rejected[lineKey{p.idx, p.line}] = dlqValue
}

func (p *partBuilder) crlfRecord(i int) {
	p.line++
	l := recordLine(p.idx, i)
	p.b.WriteString(l + "\r\n")
	p.exp.records[lineKey{p.idx, p.line}] = l
}

// checkSnapshot verifies the README's message format on the topic's content for runID.
func checkSnapshot(t *testing.T, recs []*kgo.Record, partitions int, m schema.Manifest, runID string, exp *expectation) {
	t.Helper()
	seen := map[lineKey]bool{}
	var total int64
	perPart := byPartition(recs, partitions)
	for p, prs := range perPart {
		if len(prs) < 2 {
			t.Fatalf("partition %d holds %d messages, want at least the start and end markers", p, len(prs))
		}
		start, end := decodeMarker(t, prs[0]), decodeMarker(t, prs[len(prs)-1])
		for _, mk := range []schema.Marker{start, end} {
			if mk.RunID != runID || mk.Export != m.Export || mk.GeneratedTime != m.GeneratedTime ||
				mk.Partition != p || mk.Partitions != partitions || mk.Parts != len(m.Parts) || mk.Time.IsZero() {
				t.Errorf("partition %d: bad marker %+v", p, mk)
			}
		}
		for _, r := range []*kgo.Record{prs[0], prs[len(prs)-1]} {
			for h, want := range map[string]string{schema.HeaderExport: m.Export, schema.HeaderGeneratedTime: m.GeneratedTime, schema.HeaderRunID: runID} {
				if got, _ := recHeader(r, h); got != want {
					t.Errorf("partition %d marker header %s = %q, want %q", p, h, got, want)
				}
			}
		}
		if start.Kind != schema.MarkerStart || start.Records != nil || start.Reason != "" {
			t.Errorf("partition %d: first message is %+v, want snapshot-start", p, start)
		}
		if end.Kind != schema.MarkerEnd || end.Records == nil || end.PartitionRecords == nil || end.Rejected == nil {
			t.Fatalf("partition %d: last message is %+v, want snapshot-end with counts", p, end)
		}
		inPart := int64(0)
		for _, r := range prs[1 : len(prs)-1] {
			if string(r.Key) == schema.MarkerKey {
				t.Fatalf("partition %d offset %d: marker between start and end", p, r.Offset)
			}
			inPart++
			ps, _ := recHeader(r, schema.HeaderPart)
			ls, _ := recHeader(r, schema.HeaderLine)
			part, err1 := strconv.Atoi(ps)
			line, err2 := strconv.ParseInt(ls, 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("record without mde.part/mde.line: %v", r.Headers)
			}
			k := lineKey{part, line}
			want, ok := exp.records[k]
			if !ok {
				t.Fatalf("unexpected record part %d line %d: %s", part, line, r.Value)
			}
			if seen[k] {
				t.Fatalf("part %d line %d published twice", part, line)
			}
			seen[k] = true
			if string(r.Value) != want {
				t.Errorf("part %d line %d: value %q, want %q", part, line, r.Value, want)
			}
			id, natural, err := schema.NewKeys(schema.KeysOf(m.Export)).Read([]byte(want))
			if err != nil || string(r.Key) != string(id) {
				t.Errorf("part %d line %d: key %q, want DeviceId %q", part, line, r.Key, id)
			}
			if got, _ := recHeader(r, schema.HeaderKey); got != string(natural) {
				t.Errorf("part %d line %d: %s = %q, want %q", part, line, schema.HeaderKey, got, natural)
			}
			if int(r.Partition) != schema.Partition(r.Key, partitions) {
				t.Errorf("part %d line %d in partition %d, murmur2 says %d", part, line, r.Partition, schema.Partition(r.Key, partitions))
			}
			for h, want := range map[string]string{
				schema.HeaderExport: m.Export, schema.HeaderGeneratedTime: m.GeneratedTime, schema.HeaderRunID: runID,
				schema.HeaderContentType: schema.ContentTypeJSON,
			} {
				if got, _ := recHeader(r, h); got != want {
					t.Errorf("record header %s = %q, want %q", h, got, want)
				}
			}
		}
		if *end.PartitionRecords != inPart {
			t.Errorf("partition %d: partitionRecords %d, but %d records between the markers", p, *end.PartitionRecords, inPart)
		}
		if *end.Records != int64(len(exp.records)) || *end.Rejected != int64(len(exp.rejected)) {
			t.Errorf("partition %d: end marker records=%d rejected=%d, want %d and %d", p, *end.Records, *end.Rejected, len(exp.records), len(exp.rejected))
		}
		total += inPart
	}
	if total != int64(len(exp.records)) || len(seen) != len(exp.records) {
		t.Errorf("published %d distinct records (%d messages), want %d", len(seen), total, len(exp.records))
	}
}

func TestSnapshotEndToEnd(t *testing.T) {
	const partitions = 6
	c := newCluster(t, kfake.SeedTopics(partitions, "records", "dlq"))
	k := newTestKafka(t, c, func(cfg *wire.Config) { cfg.DLQTopic = "dlq"; cfg.MaxMessageBytes = 4096 })

	m := newManifest(t, 3)
	exp := newExpectation()
	contents := map[int]string{}
	for pi := range 3 {
		pb := &partBuilder{idx: pi, exp: exp}
		if pi == 0 {
			pb.b.WriteString("\ufeff") // BOM, not part of line 1
		}
		for i := range 200 + 150*pi {
			switch {
			case pi == 0 && i%50 == 7:
				pb.blank("")
			case pi == 0 && i%50 == 9:
				pb.blank(" \t\r")
			case pi == 1 && i%40 == 3:
				pb.crlfRecord(i)
				continue
			}
			pb.record(i)
		}
		if pi == 2 {
			pb.bad(`[1,2,3]`, `[1,2,3]`)
			pb.bad(`{"DeviceName":"x"}`, `{"DeviceName":"x"}`)
			pb.bad(`{"DeviceId":""}`, `{"DeviceId":""}`)
			pb.bad(`{"DeviceId":42}`, `{"DeviceId":42}`)
			pb.bad(`{"DeviceId":"mde.snapshot"}`, `{"DeviceId":"mde.snapshot"}`)
			pb.bad(`not json at all`, `not json at all`)
			pb.bad(`{"DeviceId":"`+deviceID(9, 9)+`","Pad":"`+strings.Repeat("x", 5000)+`"}`, "")
			pb.record(9999)
			pb.line++
			l := recordLine(2, 10000)
			pb.b.WriteString(l) // last line without newline
			exp.records[lineKey{2, pb.line}] = l
		}
		contents[pi] = pb.b.String()
	}

	var logs testutil.SyncBuffer
	s, err := NewSnapshot(SnapshotConfig{RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", DLQTopic: "dlq", Partitions: partitions, DLQPartitions: 1,
		RunID: "run-1", Workers: 2, MaxMessageBytes: 4096, Names: func(string) string { return "KAFKA_MAX_MESSAGE_BYTES" },
		Logger: zerolog.New(&logs),
	}, newMemParts(contents), k)
	if err != nil {
		t.Fatal(err)
	}
	s.batchBytes = 20 << 10 // many batches
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Aborted || res.Records != int64(len(exp.records)) || res.Rejected != int64(len(exp.rejected)) || res.Parts != 3 {
		t.Fatalf("result %+v, want %d records and %d rejected", res, len(exp.records), len(exp.rejected))
	}
	if p := s.Progress(); p.PartsDone != 3 || p.PartsTotal != 3 || p.Records != res.Records || p.LineBytes != res.LineBytes || p.LineBytes == 0 {
		t.Fatalf("progress %+v vs result %+v", p, res)
	}

	recs := readTopic(t, c.ListenAddrs(), "records")
	checkSnapshot(t, recs, partitions, m, "run-1", exp)
	var sum int64
	for p, n := range res.PartitionRecords {
		sum += n
		got := int64(len(byPartition(recs, partitions)[p]) - 2)
		if n != got {
			t.Errorf("Result.PartitionRecords[%d] = %d, topic holds %d", p, n, got)
		}
	}
	if sum != res.Records {
		t.Errorf("sum of PartitionRecords %d != Records %d", sum, res.Records)
	}

	// Dead letters: raw line, position and reason; no content in the logs.
	dlq := readTopic(t, c.ListenAddrs(), "dlq")
	if len(dlq) != len(exp.rejected) {
		t.Fatalf("DLQ holds %d messages, want %d", len(dlq), len(exp.rejected))
	}
	for _, r := range dlq {
		ps, _ := recHeader(r, schema.HeaderPart)
		ls, _ := recHeader(r, schema.HeaderLine)
		reason, _ := recHeader(r, schema.HeaderError)
		part, _ := strconv.Atoi(ps)
		line, _ := strconv.ParseInt(ls, 10, 64)
		want, ok := exp.rejected[lineKey{part, line}]
		if !ok {
			t.Fatalf("unexpected dead letter part %q line %q", ps, ls)
		}
		if string(r.Value) != want || reason == "" {
			t.Errorf("dead letter part %d line %d: value %q error %q, want value %q", part, line, r.Value, reason, want)
		}
		if want == "" && !strings.Contains(reason, "KAFKA_MAX_MESSAGE_BYTES") {
			t.Errorf("too long line: mde.error %q does not say why", reason)
		}
	}
	out := logs.String()
	if strings.Count(out, `"line rejected"`) != len(exp.rejected) {
		t.Errorf("want one warning per rejected line, logs:\n%s", out)
	}
	for _, secret := range []string{"DeviceName", "not json at all", "SECRETSIG", "sig="} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %q:\n%s", secret, out)
		}
	}
}

func TestPartitionMatchesKafkaGoAndJava(t *testing.T) {
	// Java: Utils.toPositive(Utils.murmur2(key)) % n, murmur2 vectors of
	// org.apache.kafka.common.utils.UtilsTest.
	java := map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536}
	for key, h := range java {
		for _, n := range []int{1, 3, 6, 7, 12} {
			want := int(uint32(h)&0x7fffffff) % n
			if got := schema.Partition([]byte(key), n); got != want {
				t.Errorf("Partition(%q, %d) = %d, Java says %d", key, n, got, want)
			}
		}
	}
	var mb kafka.Murmur2Balancer
	for i := range 2000 {
		key := []byte(deviceID(0, i))
		for _, n := range []int{1, 6, 13} {
			parts := make([]int, n)
			for p := range parts {
				parts[p] = p
			}
			if got, want := schema.Partition(key, n), mb.Balance(kafka.Message{Key: key}, parts...); got != want {
				t.Fatalf("key %s, %d partitions: schema.Partition %d, kafka.Murmur2Balancer %d", key, n, got, want)
			}
		}
	}
}

// failingReader returns content, then err instead of EOF.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

var errTransient = errors.New("connection reset (transient)")

func TestSnapshotResumeAfterRetryableFailure(t *testing.T) {
	const partitions = 4
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 2)
	exp := newExpectation()
	contents := map[int]string{}
	for pi := range 2 {
		pb := &partBuilder{idx: pi, exp: exp}
		for i := range 400 {
			pb.record(i)
		}
		contents[pi] = pb.b.String()
	}
	// Part 1 breaks twice: after 137 lines and a half, then after 300.
	cut1 := strings.Index(contents[1], recordLine(1, 137)) + 50
	cut2 := strings.Index(contents[1], recordLine(1, 300)) + 10
	var opens atomic.Int32
	parts := PartOpenerFunc(func(_ context.Context, p schema.Part) (io.ReadCloser, error) {
		d := contents[p.Index]
		if p.Index == 1 {
			switch opens.Add(1) {
			case 1:
				return io.NopCloser(&failingReader{strings.NewReader(d[:cut1]), errTransient}), nil
			case 2:
				return nil, errTransient // reopening fails once too
			case 3:
				return io.NopCloser(&failingReader{strings.NewReader(d[:cut2]), errTransient}), nil
			}
		}
		return io.NopCloser(strings.NewReader(d)), nil
	})
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-resume", Workers: 2,
		Retryable: func(err error) bool { return errors.Is(err, errTransient) },
	}, parts, k)
	if err != nil {
		t.Fatal(err)
	}
	s.retryInitial = time.Millisecond
	s.batchBytes = 30 << 10
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := opens.Load(); got != 4 {
		t.Errorf("part 1 opened %d times, want 4", got)
	}
	if res.Records != 800 {
		t.Errorf("Records = %d, want 800", res.Records)
	}
	checkSnapshot(t, readTopic(t, c.ListenAddrs(), "records"), partitions, m, "run-resume", exp)
}

// checkAborted verifies that every partition ends with snapshot-abort of
// runID, after its snapshot-start, with no snapshot-end.
func checkAborted(t *testing.T, recs []*kgo.Record, partitions int, runID string) {
	t.Helper()
	for p, prs := range byPartition(recs, partitions) {
		if len(prs) < 2 {
			t.Fatalf("partition %d holds %d messages, want start and abort", p, len(prs))
		}
		start, last := decodeMarker(t, prs[0]), decodeMarker(t, prs[len(prs)-1])
		if start.Kind != schema.MarkerStart || last.Kind != schema.MarkerAbort || last.RunID != runID || last.Reason == "" || last.Partition != p {
			t.Errorf("partition %d: first %+v, last %+v, want start … abort with a reason", p, start, last)
		}
		if last.Records != nil {
			t.Errorf("abort marker carries counts: %+v", last)
		}
		for _, r := range prs[1 : len(prs)-1] {
			if string(r.Key) == schema.MarkerKey {
				t.Errorf("partition %d: a marker between start and abort: %s", p, r.Value)
			}
		}
	}
}

func TestSnapshotNonRetryableFailureAborts(t *testing.T) {
	const partitions = 3
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 3)
	good := recordLine(0, 1) + "\n" + recordLine(0, 2) + "\n"
	errCorrupt := errors.New("gzip: invalid header")
	var logs testutil.SyncBuffer
	parts := PartOpenerFunc(func(_ context.Context, p schema.Part) (io.ReadCloser, error) {
		if p.Index == 1 {
			return io.NopCloser(&failingReader{strings.NewReader(good), fmt.Errorf("reading %s: %w", p.URL, errCorrupt)}), nil
		}
		return io.NopCloser(strings.NewReader(good)), nil
	})
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-fail", Workers: 1,
		Retryable: func(err error) bool { return errors.Is(err, errTransient) }, Logger: zerolog.New(&logs),
	}, parts, k)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	var pe *PartError
	if !errors.As(err, &pe) || pe.Part != 1 || pe.Line != 3 || !errors.Is(err, errCorrupt) {
		t.Fatalf("Run error %v, want a PartError of part 1 at line 3 wrapping the gzip error", err)
	}
	if !res.Aborted || !strings.Contains(res.Reason, "gzip: invalid header") {
		t.Fatalf("result %+v, want aborted with the reason", res)
	}
	for _, s := range []string{err.Error(), res.Reason, logs.String()} {
		if strings.Contains(s, "SECRETSIG") {
			t.Errorf("SAS signature leaked: %s", s)
		}
	}
	checkAborted(t, readTopic(t, c.ListenAddrs(), "records"), partitions, "run-fail")
}

// blockingReader serves content, reports when it is exhausted, then blocks
// until ctx is done.
type blockingReader struct {
	r       io.Reader
	ctx     context.Context
	reached chan<- struct{}
	once    atomic.Bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != io.EOF {
		return n, err
	}
	if b.once.CompareAndSwap(false, true) {
		close(b.reached)
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func TestSnapshotCancelWritesAbortMarkers(t *testing.T) {
	const partitions = 5
	c := newCluster(t, kfake.SeedTopics(partitions, "records"))
	k := newTestKafka(t, c, nil)
	m := newManifest(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reached := make(chan struct{})
	var content strings.Builder
	for i := range 300 {
		content.WriteString(recordLine(0, i) + "\n")
	}
	parts := PartOpenerFunc(func(octx context.Context, p schema.Part) (io.ReadCloser, error) {
		if p.Index == 0 {
			return io.NopCloser(&blockingReader{r: strings.NewReader(content.String()), ctx: octx, reached: reached}), nil
		}
		<-octx.Done() // part 1 never delivers
		return nil, octx.Err()
	})
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute,
		Manifest: m, Topic: "records", Partitions: partitions, RunID: "run-cancel", Workers: 2,
	}, parts, k)
	if err != nil {
		t.Fatal(err)
	}
	s.batchBytes = 40 << 10
	go func() {
		<-reached
		// Wait until some batches are acknowledged, then "SIGTERM".
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for s.Progress().Records < 256 {
			select {
			case <-tick.C:
			case <-deadline:
				cancel()
				return
			}
		}
		cancel()
	}()
	res, err := s.Run(ctx)
	if !errors.Is(err, context.Canceled) || !res.Aborted || !strings.HasPrefix(res.Reason, "cancelled") {
		t.Fatalf("Run = %+v, %v; want an abort by cancellation", res, err)
	}
	recs := readTopic(t, c.ListenAddrs(), "records")
	checkAborted(t, recs, partitions, "run-cancel")
	// Records not yet sent are dropped; those acknowledged are counted.
	if got := int64(len(recs) - 2*partitions); got != res.Records {
		t.Errorf("topic holds %d records, Result.Records = %d (want equal)", got, res.Records)
	}
}

func TestNewSnapshotRejectsBadConfig(t *testing.T) {
	m := newManifest(t, 1)
	ok := SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute, Manifest: m, Topic: "t", Partitions: 1, RunID: "r"}
	for name, mod := range map[string]func(*SnapshotConfig){
		"no parts":      func(c *SnapshotConfig) { c.Manifest.Parts = nil },
		"no topic":      func(c *SnapshotConfig) { c.Topic = "" },
		"dlq = topic":   func(c *SnapshotConfig) { c.DLQTopic = "t" },
		"no partitions": func(c *SnapshotConfig) { c.Partitions = 0 },
		"no run id":     func(c *SnapshotConfig) { c.RunID = "" },
	} {
		cfg := ok
		mod(&cfg)
		if _, err := NewSnapshot(cfg, newMemParts(nil), wire.Discard()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSnapshot(ok, newMemParts(nil), wire.Discard()); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestSnapshotDryRunDiscard(t *testing.T) {
	m := newManifest(t, 2)
	contents := map[int]string{0: recordLine(0, 1) + "\n" + recordLine(0, 2) + "\n", 1: recordLine(1, 1) + "\n[]\n"}
	s, err := NewSnapshot(SnapshotConfig{MaxMessageBytes: 1_000_000, RetryMaxElapsed: 2 * time.Minute, Manifest: m, Topic: "t", Partitions: 3, RunID: "r"}, newMemParts(contents), wire.Discard())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background())
	if err != nil || res.Records != 3 || res.Rejected != 1 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
}
