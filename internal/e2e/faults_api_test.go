//go:build integration

package e2e

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/internal/verify"
)

// Faults at the HTTP layer (Defender API, blob storage) and SIGTERM,
// against the built binary, the real broker and Azurite (README "Failure
// handling"). Every test also asserts, through w.run / w.wait, that
// nothing secret reached stdout or stderr.

// ---------------------------------------------------------------- helpers

// partName is the last path segment of part i of the world's layout, the
// suffix faults are injected on.
func partName(w *world, i int) string { return path.Base(w.layout.Parts[i].Name) }

// partIndex returns the position (mde.part) of layout part i.
func partIndex(w *world, i int) int {
	for j, p := range schemaParts(w) {
		if u, err := url.PathUnescape(p); err == nil && strings.HasSuffix(u, "/"+partName(w, i)) {
			return j
		}
	}
	w.t.Fatalf("part %s not in the manifest", partName(w, i))
	return -1
}

// assertNoMessages fails unless the topic is missing or empty: no marker,
// no record.
func (w *world) assertNoMessages() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := w.rig.Admin(w.t).ListEndOffsets(ctx, w.Topic)
	if err != nil {
		w.t.Fatalf("end offsets: %v", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			total += o.Offset
		}
	})
	if total != 0 {
		msgs, _ := w.read(w.Topic)
		w.t.Fatalf("topic holds %d messages, want none (first: key %q headers %v)", total, msgs[0].Key, msgs[0].Headers)
	}
}

// assertAborted checks that the run wrote snapshot-start and then
// snapshot-abort on every partition, with nothing of the run after the
// abort (verify.Check reports a record outside start…end as a problem),
// no line twice, and as many records as the run says it had acknowledged.
func (w *world) assertAborted(res result) *verify.Run {
	w.t.Helper()
	sum := summaryOf(w.t, res.Stderr)
	id, _ := sum["run_id"].(string)
	_, rep := w.read(w.Topic)
	run := rep.Run(id)
	if run == nil {
		w.t.Fatalf("run %s left nothing in the topic", id)
	}
	if run.Started != rep.Partitions || run.Aborted != rep.Partitions || run.Ended != 0 {
		w.t.Fatalf("run: start on %d, abort on %d, end on %d of %d partitions",
			run.Started, run.Aborted, run.Ended, rep.Partitions)
	}
	if run.Reason == "" {
		w.t.Fatal("snapshot-abort without a reason")
	}
	if len(run.Problems) != 0 || len(rep.Problems) != 0 {
		w.t.Fatalf("problems: %v %v", run.Problems, rep.Problems)
	}
	if rec, _ := sum["records"].(float64); int64(rec) != run.Records {
		w.t.Fatalf("the run acknowledged %v records, the topic holds %d", sum["records"], run.Records)
	}
	if sum["complete"] != false {
		w.t.Fatalf("summary says complete=%v", sum["complete"])
	}
	return run
}

// start starts `tvm2kafka run` in the background; it is killed when the
// test ends if it is still running.
func (w *world) start(extra map[string]string) *live { return w.launch(extra, "run") }

// startedWith reports whether every partition of the world's topic holds
// a message (its snapshot-start) and the topic n more.
func (w *world) startedWith(adm *kadm.Client, n int64) bool {
	ends := w.endOffsets(adm)
	var sum int64
	for _, e := range ends {
		if e == 0 {
			return false
		}
		sum += e
	}
	return len(ends) > 0 && sum >= int64(len(ends))+n
}

// endOffsets returns the end offset of every partition of the world's
// topic (nil while the topic does not exist).
func (w *world) endOffsets(adm *kadm.Client) []int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, w.Topic)
	if err != nil || ends.Error() != nil {
		return nil
	}
	var out []int64
	ends.Each(func(o kadm.ListedOffset) { out = append(out, o.Offset) })
	return out
}

// held releases a hold channel once, when the test ends at the latest
// (the proxy's Close waits for held requests).
func held(t *testing.T) (ch chan struct{}, release func()) {
	ch = make(chan struct{})
	var once bool
	release = func() {
		if !once {
			once = true
			close(ch)
		}
	}
	t.Cleanup(release)
	return ch, release
}

// expireAndRemint expires every SAS signature the blob proxy has seen and
// makes the Defender fake answer new ones. SAS times have a one-second
// resolution: a SAS minted in the same second as the previous one for a
// blob has the same signature, so it waits (bounded) for a new second
// after made, the time the previous SAS URLs were minted by.
func (w *world) expireAndRemint(made time.Time) {
	w.t.Helper()
	testutil.Poll(w.t, 2*time.Second, "a new second", func() bool { return time.Now().Unix() > made.Unix() })
	w.blobProx.ExpireSignatures()
	w.mu.Lock()
	old := map[string]bool{}
	for _, s := range w.allSigs {
		old[s] = true
	}
	w.mu.Unlock()
	w.remintSAS(time.Hour)
	w.mu.Lock()
	urls := append([]string(nil), w.urls...)
	w.mu.Unlock()
	for _, u := range urls {
		if old[sigOf(u)] {
			w.t.Fatal("reminted SAS URL has an old signature")
		}
	}
}

// complete asserts exit 0 and a complete snapshot, and returns the run.
func (w *world) complete(res result) *verify.Run {
	w.t.Helper()
	if res.Code != 0 {
		w.t.Fatalf("exit %d\n%s", res.Code, tail(res.Stderr, 40))
	}
	msgs, rep := w.read(w.Topic)
	return w.assertSnapshot(msgs, rep, runID(w.t, res.Stderr), 0)
}

// blobStatuses returns the statuses the blob proxy answered for one part,
// in order, and the Range headers of those requests.
func (w *world) blobStatuses(name string) (statuses []int, ranges []string) {
	for _, r := range w.blobProx.Log() {
		if strings.HasSuffix(r.Path, "/"+name) {
			statuses = append(statuses, r.Status)
			ranges = append(ranges, r.Range)
		}
	}
	return statuses, ranges
}

func contains(ints []int, v int) bool {
	for _, i := range ints {
		if i == v {
			return true
		}
	}
	return false
}

// ------------------------------------------------------- 1. Defender API

// TestDefender429HonoursRetryAfter: 429 with Retry-After in seconds and as
// an HTTP date → the run waits at least that long, then completes.
func TestDefender429HonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value func() string
		min   time.Duration // the backoff alone waits at most 1.5 s
	}{
		{"seconds", func() string { return "3" }, 3 * time.Second},
		{"http-date", func() string { return time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat) }, 3500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 400, 2)
			w.defender.Fail(fakes.Response{Status: http.StatusTooManyRequests,
				Header: http.Header{"Retry-After": {tc.value()}},
				Body:   fakes.DefenderErrorBody("TooManyRequests", "Rate limit is exceeded. Try again later.")})
			res := w.run(nil)
			w.complete(res)
			calls := w.defender.Calls()
			if len(calls) != 2 {
				t.Fatalf("%d export calls, want 2 (429, then success)", len(calls))
			}
			if gap := calls[1].Sub(calls[0]); gap < tc.min {
				t.Fatalf("retried %v after the 429, Retry-After asked for at least %v", gap, tc.min)
			}
			if res.Elapsed < tc.min {
				t.Fatalf("run took %v", res.Elapsed)
			}
		})
	}
}

// TestDefender5xxBurst: three 503 in a row → retried with backoff, complete.
func TestDefender5xxBurst(t *testing.T) {
	w := newWorld(t, 400, 2)
	for range 3 {
		w.defender.Fail(fakes.Response{Status: http.StatusServiceUnavailable,
			Body: fakes.DefenderErrorBody("ServiceUnavailable", "The service is unavailable.")})
	}
	w.complete(w.run(nil))
	calls := w.defender.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d export calls, want 4", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].Sub(calls[i-1]) < 400*time.Millisecond {
			t.Fatalf("no backoff between calls %d and %d: %v", i, i+1, calls[i].Sub(calls[i-1]))
		}
	}
}

// TestWrongClientSecret: Entra ID answers invalid_client → exit 1 within
// 30 s, a message naming the credential problem, no export call, no
// marker, and the wrong secret itself is not printed either.
func TestWrongClientSecret(t *testing.T) {
	w := newWorld(t, 200, 1)
	const wrong = "wrong-secret-Zz9~kQ4vLmN"
	res := w.run(map[string]string{"AZURE_CLIENT_SECRET": wrong})
	if res.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 20))
	}
	if res.Elapsed > 30*time.Second {
		t.Fatalf("took %v to fail", res.Elapsed)
	}
	if !strings.Contains(res.Stderr, "invalid_client") && !strings.Contains(res.Stderr, "AZURE_CLIENT_SECRET") {
		t.Fatalf("message does not name the credential problem:\n%s", tail(res.Stderr, 20))
	}
	if strings.Contains(res.Stdout+res.Stderr, wrong) {
		t.Fatal("the (wrong) client secret was printed")
	}
	if w.entra.TokenRequests() == 0 {
		t.Fatal("no token request reached Entra ID")
	}
	if n := len(w.defender.Calls()); n != 0 {
		t.Fatalf("%d export calls without a token", n)
	}
	w.assertNoMessages()
}

// TestDefenderPermanentErrors: 403, 401, a malformed body and an empty
// exportFiles fail the run at once (exit 1, one export call) with a clear
// message and write no marker.
func TestDefenderPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp fakes.Response
		want []string // each must be in stderr
	}{
		{"403", fakes.Response{Status: 403, Body: fakes.DefenderErrorBody("Forbidden", "Missing application roles. API required roles: Vulnerability.Read.All")},
			[]string{"403", "Vulnerability.Read.All"}},
		{"401", fakes.Response{Status: 401, Body: fakes.DefenderErrorBody("Unauthorized", "Authorization has been denied for this request.")},
			[]string{"401", "AZURE_TENANT_ID"}},
		{"malformed-json", fakes.Response{Status: 200, Body: `{"exportFiles": ["https://x.blob.core.windows.net/a?sig=`}, // cut short
			[]string{"malformed export manifest"}},
		{"empty-export", fakes.Response{Status: 200, Body: `{"@odata.context":"x","exportFiles":[],"generatedTime":"2025-01-01T00:00:00Z"}`},
			[]string{"no export files"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, 200, 1)
			w.defender.Fail(tc.resp)
			res := w.run(nil)
			if res.Code != 1 {
				t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 20))
			}
			for _, s := range tc.want {
				if !strings.Contains(res.Stderr, s) {
					t.Fatalf("stderr does not say %q:\n%s", s, tail(res.Stderr, 20))
				}
			}
			if n := len(w.defender.Calls()); n != 1 {
				t.Fatalf("%d export calls, want 1 (no retry of a permanent error)", n)
			}
			if res.Elapsed > 30*time.Second {
				t.Fatalf("took %v to fail", res.Elapsed)
			}
			w.assertNoMessages()
		})
	}
}

// ------------------------------------------------------- 2. Rate limit

// TestExportRateLimitAcrossSASRefreshes: every part's SAS is refused once,
// one part after the other (one worker), so the run fetches the manifest
// 1 + parts times; the 6th call must wait for the minute window: no 60 s
// window of the Defender fake's receive times holds more than 5 calls.
// (The 20-an-hour limit is covered in-process with a fake clock in
// source/: TestRateLimiter*, TestManifestRateLimited*.)
func TestExportRateLimitAcrossSASRefreshes(t *testing.T) {
	const parts = 6
	w := newWorld(t, 600, parts)
	for i := range parts {
		w.blobProx.Inject(partName(w, i), fakes.Fault{Expired: true})
	}
	res := w.run(map[string]string{"TVM2KAFKA_WORKERS": "1"})
	w.complete(res)
	calls := w.defender.Calls()
	if len(calls) != 1+parts {
		t.Fatalf("%d export calls, want %d (one, then one refresh per refused part)", len(calls), 1+parts)
	}
	for i := range calls {
		n := 0
		for j := i; j < len(calls) && calls[j].Sub(calls[i]) < time.Minute; j++ {
			n++
		}
		if n > 5 {
			t.Fatalf("%d export calls within 60 s from call %d: %v", n, i+1, calls)
		}
	}
	t.Logf("6th export call received %v after the 1st", calls[5].Sub(calls[0]))
	if res.Elapsed < time.Minute {
		t.Fatalf("run took %v: the 6th call did not wait for the window", res.Elapsed)
	}
}

// ------------------------------------------------------------- 3. Blobs

// TestBlob5xxBurst: 500, 503, 500 on one part → retried, complete.
func TestBlob5xxBurst(t *testing.T) {
	w := newWorld(t, 1200, 3)
	name := partName(w, 1)
	w.blobProx.Inject(name, fakes.Fault{Status: 500}, fakes.Fault{Status: 503}, fakes.Fault{Status: 500})
	w.complete(w.run(nil))
	st, _ := w.blobStatuses(name)
	if len(st) < 4 || st[0] != 500 || st[1] != 503 || st[2] != 500 || st[len(st)-1] != 200 {
		t.Fatalf("part %s answered %v", name, st)
	}
}

// TestBlobConnectionCut: the connection closes after 48 KB of one part's
// body → the read resumes (Range request) and every device is published
// exactly once.
func TestBlobConnectionCut(t *testing.T) {
	w := newWorld(t, 3000, 3)
	// The synthetic parts differ in size (random seed): cut the largest.
	big := 0
	for i, p := range w.layout.Parts {
		if len(w.blobs[p.Name]) > len(w.blobs[w.layout.Parts[big].Name]) {
			big = i
		}
	}
	name := partName(w, big)
	if n := len(w.blobs[w.layout.Parts[big].Name]); n < 100<<10 {
		t.Fatalf("part of %d bytes is too small for the test", n)
	}
	w.blobProx.Inject(name, fakes.Fault{CutAfter: 48 << 10})
	w.complete(w.run(nil)) // assertSnapshot fails on a repeated DeviceId
	st, ranges := w.blobStatuses(name)
	if len(st) < 2 || w.blobProx.Pending() != 0 {
		t.Fatalf("part %s: %d requests %v, %d faults pending", name, len(st), st, w.blobProx.Pending())
	}
	if ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || strings.HasPrefix(ranges[1], "bytes=0-") {
		t.Fatalf("ranges of the cut part's requests %q: not resumed from the byte offset", ranges)
	}
}

// TestBlobCopyPending: 200 with an empty body and x-ms-copy-status:
// pending, twice → the part is waited for, never published as empty.
func TestBlobCopyPending(t *testing.T) {
	w := newWorld(t, 1200, 3)
	name := partName(w, 2)
	w.blobProx.Inject(name, fakes.Fault{CopyPending: true}, fakes.Fault{CopyPending: true})
	w.complete(w.run(nil)) // every device of that part is there
	st, _ := w.blobStatuses(name)
	if len(st) != 3 || w.blobProx.Pending() != 0 {
		t.Fatalf("part %s: requests answered %v, want 2 pending answers then the blob", name, st)
	}
}

// TestBlobSASExpiredMidRun: parts are read one after the other; when the
// last one is requested, every SAS handed out so far expires and Defender
// answers new URLs → 403 AuthenticationFailed, one manifest refresh, the
// part is read with its new URL, the snapshot is complete.
func TestBlobSASExpiredMidRun(t *testing.T) {
	const parts = 3
	w := newWorld(t, 1500, parts)
	made := time.Now()
	last := -1
	for i := range parts {
		if partIndex(w, i) == parts-1 {
			last = i
		}
	}
	name := partName(w, last)
	hold, release := held(t)
	w.blobProx.Inject(name, fakes.Fault{Hold: hold})
	p := w.start(map[string]string{"TVM2KAFKA_WORKERS": "1"})
	testutil.Poll(t, 2*time.Minute, "the last part's request", func() bool { return w.blobProx.Held() == 1 })
	for i := range parts {
		if i == last {
			continue
		}
		if st, _ := w.blobStatuses(partName(w, i)); !contains(st, 200) {
			t.Fatalf("part %s not read before the last one: %v", partName(w, i), st)
		}
	}
	w.expireAndRemint(made)
	release()
	w.complete(w.finish(p, 3*time.Minute))
	if n := len(w.defender.Calls()); n != 2 {
		t.Fatalf("%d export calls, want 2 (the refresh after the 403)", n)
	}
	if st, _ := w.blobStatuses(name); len(st) != 2 || st[0] != 403 || st[1] != 200 {
		t.Fatalf("last part answered %v, want 403 then 200", st)
	}
}

// TestBlobCutThenSASExpiredOnResume: the connection is cut after 48 KB,
// and the SAS expires before the Range request that would resume it →
// 403 on the resume, the part is reopened, the manifest fetched again, and
// the part continues after its last acknowledged line: no line twice.
func TestBlobCutThenSASExpiredOnResume(t *testing.T) {
	w := newWorld(t, 3000, 2)
	made := time.Now()
	name := partName(w, 0)
	hold, release := held(t)
	w.blobProx.Inject(name, fakes.Fault{CutAfter: 48 << 10}, fakes.Fault{Hold: hold})
	p := w.start(nil)
	testutil.Poll(t, 2*time.Minute, "the resume request", func() bool { return w.blobProx.Held() == 1 })
	w.expireAndRemint(made)
	release()
	res := w.finish(p, 3*time.Minute)
	w.complete(res) // assertSnapshot fails on a repeated line
	st, ranges := w.blobStatuses(name)
	// 200 (cut) → 403 on the Range resume → 403 on the reopen with the old
	// URL → refresh → 200 with the new URL.
	if len(st) < 3 || st[0] != 200 || st[1] != 403 || !strings.Contains(ranges[1], "bytes=") || st[len(st)-1] != 200 {
		t.Fatalf("part %s answered %v (ranges %q)", name, st, ranges)
	}
	if n := len(w.defender.Calls()); n != 2 {
		t.Fatalf("%d export calls, want 2", n)
	}
	if !strings.Contains(res.Stderr, "resume_after_line") {
		t.Fatal("no log of the part being reopened after its last line")
	}
}

// TestBlobNotFoundAborts: one part answers 404 BlobNotFound → exit 1,
// snapshot-abort on every partition after the start markers, and the
// error names the blob by its path, never with its SAS query.
func TestBlobNotFoundAborts(t *testing.T) {
	w := newWorld(t, 1200, 3)
	name := partName(w, 1)
	w.blobProx.Inject(name, fakes.Fault{Status: 404,
		Header: http.Header{"x-ms-error-code": {"BlobNotFound"}},
		Body:   fakes.AzureErrorBody("BlobNotFound", "The specified blob does not exist.")})
	res := w.run(nil)
	if res.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.Code, tail(res.Stderr, 20))
	}
	run := w.assertAborted(res)
	if !strings.Contains(run.Reason, "not found") && !strings.Contains(run.Reason, "404") {
		t.Fatalf("abort reason %q does not say the blob is missing", run.Reason)
	}
	if !strings.Contains(res.Stderr, name) || !strings.Contains(res.Stderr, "BlobNotFound") {
		t.Fatalf("the error does not name the blob:\n%s", tail(res.Stderr, 20))
	}
	if st, _ := w.blobStatuses(name); len(st) != 1 {
		t.Fatalf("a 404 was retried: %v", st)
	}
}

// ------------------------------------------------------------ 6. SIGTERM

// TestSIGTERMMidSnapshot: one part hangs, the others are published; on
// SIGTERM the run exits 1 within 30 s with snapshot-abort on every
// partition after all of the run's records, each acknowledged record
// counted, nothing after the abort.
func TestSIGTERMMidSnapshot(t *testing.T) {
	const parts = 4
	w := newWorld(t, 2000, parts)
	hold, _ := held(t)
	w.blobProx.Inject(partName(w, 0), fakes.Fault{Hold: hold})
	others := int64(0)
	for _, p := range w.layout.Parts[1:] {
		others += int64(p.Devices)
	}
	p := w.start(nil)
	adm := w.rig.Admin(t)
	testutil.Poll(t, 2*time.Minute, "start markers and the other parts' records", func() bool { return w.startedWith(adm, others) })
	if w.blobProx.Held() != 1 {
		t.Fatalf("%d requests held, want the hanging part's", w.blobProx.Held())
	}
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := w.finish(p, 40*time.Second)
	if took := time.Since(signalled); took > 30*time.Second {
		t.Fatalf("exited %v after SIGTERM", took)
	}
	if res.Code != 1 {
		t.Fatalf("exit %d after SIGTERM, want 1\n%s", res.Code, tail(res.Stderr, 20))
	}
	run := w.assertAborted(res)
	if run.Records != others {
		t.Fatalf("aborted run holds %d records, want the %d of the parts that were read", run.Records, others)
	}
}
