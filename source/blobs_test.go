package source_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/internal/testutil"
	"github.com/tvm2kafka/tvm2kafka/schema"
	"github.com/tvm2kafka/tvm2kafka/source"
)

const container = "temp-43b2fdb7"

func blobName(i int) string {
	return "2026-03-01/1001/InfoGatheringExport/json/OrgId=47d41a0c/_RbacGroupId=" + string(rune('0'+i)) + "/part-0000" + string(rune('1'+i)) + "-42240b35.c000.json.gz"
}

type blobRig struct {
	store  *fakes.BlobStore
	proxy  *fakes.BlobProxy
	clock  *fakes.Clock
	logs   *testutil.SyncBuffer
	plain  [][]byte
	expiry time.Time

	refreshes atomic.Int32
	mu        sync.Mutex
	errs      []string
}

// newBlobRig stores n parts (and their contents, to compare) behind a proxy.
func newBlobRig(t *testing.T, n int, content func(i int) []byte) (*blobRig, schema.Manifest) {
	t.Helper()
	r := &blobRig{store: fakes.NewBlobStore(), clock: fakes.NewClock(t0), expiry: time.Now().Add(time.Hour)}
	t.Cleanup(r.store.Close)
	r.proxy = fakes.NewBlobProxy(r.store.URL())
	t.Cleanup(r.proxy.Close)
	for i := 0; i < n; i++ {
		data := lines(300 + i)
		var blob []byte
		if content != nil {
			blob = content(i)
		} else {
			blob = gz(t, data)
		}
		r.plain = append(r.plain, data)
		r.store.Put(container, blobName(i), blob)
	}
	return r, r.manifest(t)
}

func (r *blobRig) manifest(t *testing.T) schema.Manifest {
	t.Helper()
	var urls []string
	for i := range r.plain {
		urls = append(urls, r.proxy.Rewrite(r.store.SASURL(container, blobName(i), r.expiry)))
	}
	m, err := schema.NewManifest(schema.ExportInfoGathering, "2026-03-01T10:01:00Z", urls)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (r *blobRig) blobs(t *testing.T) *source.Blobs {
	log, buf := testLogger()
	r.logs = buf
	return source.NewBlobs(source.BlobConfig{Names: testNames,
		Clock:  r.clock,
		Logger: log,
		Refresh: func(ctx context.Context) (schema.Manifest, error) {
			r.refreshes.Add(1)
			r.expiry = r.expiry.Add(time.Minute) // a new expiry: a new signature
			return r.manifest(t), nil
		},
		GeneratedTime: "2026-03-01T10:01:00Z",
	})
}

func (r *blobRig) read(t *testing.T, b *source.Blobs, p schema.Part) ([]byte, error) {
	t.Helper()
	rc, err := b.OpenPart(context.Background(), p)
	if err != nil {
		r.noteErr(err)
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		r.noteErr(err)
	}
	return data, err
}

func (r *blobRig) noteErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err.Error())
}

// checkSecrets asserts that no SAS signature reached errors or logs.
func (r *blobRig) checkSecrets(t *testing.T, m schema.Manifest) {
	t.Helper()
	texts := append([]string{r.logs.String()}, r.errs...)
	var sigs []string
	for _, p := range m.Parts {
		_, q, _ := strings.Cut(p.URL, "?")
		sigs = append(sigs, q)
		if i := strings.Index(q, "sig="); i >= 0 {
			sigs = append(sigs, q[i+4:])
		}
	}
	assertNoSecrets(t, texts, sigs...)
}

func TestOpenPartReadsAll(t *testing.T) {
	r, m := newBlobRig(t, 2, nil)
	b := r.blobs(t)
	var compressed int64
	for i, p := range m.Parts {
		got, err := r.read(t, b, p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, r.plain[i]) {
			t.Fatalf("part %d differs", i)
		}
		compressed += int64(len(gz(t, r.plain[i])))
	}
	if b.BytesDownloaded() != compressed {
		t.Fatalf("BytesDownloaded %d, want %d", b.BytesDownloaded(), compressed)
	}
	r.checkSecrets(t, m)
}

func TestOpenPart5xxBurst(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	r.proxy.Inject(blobName(0), fakes.Fault{Status: 503}, fakes.Fault{Status: 500}, fakes.Fault{Status: 503}, fakes.Fault{Status: 429})
	b := r.blobs(t)
	got, err := r.read(t, b, m.Parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.plain[0]) || r.proxy.Pending() != 0 {
		t.Fatalf("data ok=%v pending faults %d", bytes.Equal(got, r.plain[0]), r.proxy.Pending())
	}
	if r.proxy.Requests() != 5 {
		t.Fatalf("requests %d, want 5", r.proxy.Requests())
	}
	r.checkSecrets(t, m)
}

func TestOpenPart5xxGivesUpRetryable(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	for i := 0; i < 100; i++ {
		r.proxy.Inject(blobName(0), fakes.Fault{Status: 503})
	}
	b := r.blobs(t)
	_, err := r.read(t, b, m.Parts[0])
	if err == nil || !source.IsRetryable(err) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v", err)
	}
	if d := r.clock.Now().Sub(t0); d > 3*time.Minute {
		t.Fatalf("retried for %v", d)
	}
	r.checkSecrets(t, m)
}

func TestOpenPartCutMidBodyResumes(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	r.proxy.Inject(blobName(0), fakes.Fault{CutAfter: 1000}, fakes.Fault{CutAfter: 700})
	b := r.blobs(t)
	got, err := r.read(t, b, m.Parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.plain[0]) {
		t.Fatalf("content differs: %d bytes, want %d", len(got), len(r.plain[0]))
	}
	// Resumed by Range requests from the offsets reached, no byte twice.
	log := r.store.Log()
	if len(log) != 3 || log[0].Range != "" || log[1].Range != "bytes=1000-" || log[2].Range != "bytes=1700-" {
		t.Fatalf("store requests %+v", log)
	}
	if want := int64(len(gz(t, r.plain[0]))); b.BytesDownloaded() != want {
		t.Fatalf("BytesDownloaded %d, want %d", b.BytesDownloaded(), want)
	}
	if !strings.Contains(r.logs.String(), "resuming") {
		t.Error("resume not logged")
	}
	r.checkSecrets(t, m)
}

func TestReadCutTooOftenIsRetryable(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	// A cut, then the resuming Range request fails too.
	r.proxy.Inject(blobName(0), fakes.Fault{CutAfter: 500}, fakes.Fault{Status: 503})
	b := r.blobs(t)
	got, err := r.read(t, b, m.Parts[0])
	if err == nil {
		t.Fatal("no error")
	}
	if !source.IsRetryable(err) || errors.Is(err, source.ErrCorrupt) {
		t.Fatalf("read error %v not retryable", err)
	}
	if !bytes.HasPrefix(r.plain[0], got) {
		t.Fatal("data read before the failure is not a prefix of the part")
	}
	// Reopening after the failure reads the whole part.
	again, err := r.read(t, b, m.Parts[0])
	if err != nil || !bytes.Equal(again, r.plain[0]) {
		t.Fatalf("reopen: %v", err)
	}
	r.checkSecrets(t, m)
}

func TestOpenPartCopyPending(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	r.proxy.Inject(blobName(0), fakes.Fault{CopyPending: true}, fakes.Fault{CopyPending: true})
	b := r.blobs(t)
	got, err := r.read(t, b, m.Parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.plain[0]) {
		t.Fatal("content differs")
	}
	if r.proxy.Requests() != 3 || len(r.clock.Sleeps()) != 2 {
		t.Fatalf("requests %d, waits %v", r.proxy.Requests(), r.clock.Sleeps())
	}
}

func TestOpenPartCopyPendingForever(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	for i := 0; i < 100; i++ {
		r.proxy.Inject(blobName(0), fakes.Fault{CopyPending: true})
	}
	_, err := r.read(t, r.blobs(t), m.Parts[0])
	if !errors.Is(err, source.ErrCopyPending) || !source.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenPartExpiredSASRefreshes(t *testing.T) {
	r, m := newBlobRig(t, 2, nil)
	b := r.blobs(t)
	r.store.ExpireSignatures()
	for i, p := range m.Parts {
		got, err := r.read(t, b, p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, r.plain[i]) {
			t.Fatal("content differs")
		}
	}
	// One refresh serves both parts.
	if n := r.refreshes.Load(); n != 1 {
		t.Fatalf("refreshes %d, want 1", n)
	}
	r.checkSecrets(t, m)
}

func TestProxyExpiredSASRefreshes(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	b := r.blobs(t)
	if _, err := r.read(t, b, m.Parts[0]); err != nil {
		t.Fatal(err)
	}
	r.proxy.ExpireSignatures()
	got, err := r.read(t, b, m.Parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, r.plain[0]) || r.refreshes.Load() != 1 {
		t.Fatalf("refreshes %d", r.refreshes.Load())
	}
	r.checkSecrets(t, m)
}

func TestConcurrentExpiryCausesOneRefresh(t *testing.T) {
	r, m := newBlobRig(t, 6, nil)
	b := r.blobs(t)
	r.store.ExpireSignatures()
	var wg sync.WaitGroup
	for i, p := range m.Parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := r.read(t, b, p)
			if err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, r.plain[i]) {
				t.Errorf("part %d differs", i)
			}
		}()
	}
	wg.Wait()
	if n := r.refreshes.Load(); n != 1 {
		t.Fatalf("refreshes %d, want 1", n)
	}
	r.checkSecrets(t, m)
}

func TestRefreshWithChangedSnapshotFails(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	b := source.NewBlobs(source.BlobConfig{Names: testNames,
		Clock: r.clock, GeneratedTime: "2026-03-01T10:01:00Z",
		Refresh: func(context.Context) (schema.Manifest, error) {
			m2 := r.manifest(t)
			m2.GeneratedTime = "2026-03-02T10:01:00Z"
			return m2, nil
		},
	})
	r.logs = &testutil.SyncBuffer{}
	r.store.ExpireSignatures()
	_, err := r.read(t, b, m.Parts[0])
	if !errors.Is(err, source.ErrSnapshotChanged) || source.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	r.checkSecrets(t, m)
}

func TestExpiredWithoutRefresh(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	r.proxy.Inject(blobName(0), fakes.Fault{Expired: true})
	b := source.NewBlobs(source.BlobConfig{Names: testNames, Clock: r.clock})
	r.logs = &testutil.SyncBuffer{}
	_, err := r.read(t, b, m.Parts[0])
	var be *source.BlobError
	if !errors.As(err, &be) || be.Status != http.StatusForbidden || !errors.Is(err, source.ErrSASExpired) {
		t.Fatalf("err = %v", err)
	}
	r.checkSecrets(t, m)
}

func TestOpenPartNotFound(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	u := r.proxy.Rewrite(r.store.SASURL(container, "2026-03-01/part-00009.json.gz", r.expiry))
	p := schema.Part{URL: u, Path: schema.BlobPath(u)}
	b := r.blobs(t)
	_, err := r.read(t, b, p)
	if !errors.Is(err, source.ErrNotFound) || source.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	if r.proxy.Requests() != 1 {
		t.Fatalf("404 retried: %d requests", r.proxy.Requests())
	}
	if !strings.Contains(err.Error(), "part-00009") {
		t.Errorf("error %q does not name the blob", err)
	}
	r.checkSecrets(t, m)
}

func TestBadContent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content func(t *testing.T, plain []byte) []byte
	}{
		{"not gzip", func(t *testing.T, plain []byte) []byte { return plain }},
		{"corrupt gzip", func(t *testing.T, plain []byte) []byte {
			z := gz(t, plain)
			for i := 20; i < 60; i++ {
				z[i] ^= 0x5a
			}
			return z
		}},
		{"truncated gzip", func(t *testing.T, plain []byte) []byte {
			z := gz(t, plain)
			return z[:len(z)/2]
		}},
		{"trailing garbage", func(t *testing.T, plain []byte) []byte {
			return append(gz(t, plain), []byte("garbage after the stream")...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, m := newBlobRig(t, 1, func(int) []byte { return tc.content(t, lines(300)) })
			b := r.blobs(t)
			_, err := r.read(t, b, m.Parts[0])
			if !errors.Is(err, source.ErrCorrupt) || source.IsRetryable(err) {
				t.Fatalf("err = %v", err)
			}
			if r.proxy.Requests() != 1 {
				t.Fatalf("corrupt part downloaded %d times", r.proxy.Requests())
			}
			r.checkSecrets(t, m)
		})
	}
}

func TestMultistreamGzip(t *testing.T) {
	a, c := lines(10), lines(20)
	r, m := newBlobRig(t, 1, func(int) []byte { return append(gz(t, a), gz(t, c)...) })
	got, err := r.read(t, r.blobs(t), m.Parts[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(append([]byte(nil), a...), c...)) {
		t.Fatal("multistream content differs")
	}
}

func TestOpenPartCanceled(t *testing.T) {
	r, m := newBlobRig(t, 1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.blobs(t).OpenPart(ctx, m.Parts[0])
	if err == nil || source.IsRetryable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
