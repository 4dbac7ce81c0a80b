package source_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/schema"
	"github.com/tvm2kafka/tvm2kafka/source"
)

// A 403 other than AuthenticationFailed is not an expired SAS: the part
// fails at once, without fetching the export's URLs again.
func TestForbiddenOtherThanExpiredFailsWithoutRefresh(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fakes.Fault
		want  string
	}{
		{"AuthorizationFailure", fakes.Fault{Status: http.StatusForbidden, Header: http.Header{"X-Ms-Error-Code": {"AuthorizationFailure"}}}, "AuthorizationFailure"},
		{"AuthorizationSourceIPMismatch", fakes.Fault{Status: http.StatusForbidden, Header: http.Header{"X-Ms-Error-Code": {"AuthorizationSourceIPMismatch"}}}, "client address"},
		{"no error code", fakes.Fault{Status: http.StatusForbidden, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html>Forbidden by policy</html>"}, "proxy or firewall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, m := newBlobRig(t, 1, nil)
			r.proxy.Inject(blobName(0), tc.fault)
			b := r.blobs(t)
			_, err := r.read(t, b, m.Parts[0])
			var be *source.BlobError
			if !errors.As(err, &be) || be.Status != http.StatusForbidden || source.IsRetryable(err) || errors.Is(err, source.ErrSASRefreshLimit) {
				t.Fatalf("err = %v, want a permanent 403", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if n := r.refreshes.Load(); n != 0 || r.proxy.Requests() != 1 {
				t.Fatalf("refreshes %d, requests %d; want 0 and 1", n, r.proxy.Requests())
			}
			r.checkSecrets(t, m)
		})
	}
}

// Storage that keeps rejecting every SAS URL costs at most
// DefaultMaxRefreshes export calls per run, whatever the number of parts
// and however often the pipeline reopens them; then every part fails
// clearly and permanently.
func TestSASRefreshesAreBoundedPerRun(t *testing.T) {
	r, m := newBlobRig(t, 3, nil)
	log, buf := testLogger()
	r.logs = buf
	b := source.NewBlobs(source.BlobConfig{Names: testNames,
		Clock: r.clock, Logger: log, GeneratedTime: "2026-03-01T10:01:00Z",
		Refresh: func(context.Context) (schema.Manifest, error) {
			r.refreshes.Add(1)
			m2 := r.manifest(t)
			r.store.ExpireSignatures() // the new URLs are rejected too
			return m2, nil
		},
	})
	r.store.ExpireSignatures()
	for round := 0; round < 3; round++ { // the pipeline reopening every part
		for _, p := range m.Parts {
			_, err := r.read(t, b, p)
			if !errors.Is(err, source.ErrSASRefreshLimit) {
				t.Fatalf("round %d part %d: err = %v, want ErrSASRefreshLimit", round, p.Index, err)
			}
			if source.IsRetryable(err) {
				t.Fatalf("round %d part %d: %v is retryable", round, p.Index, err)
			}
		}
	}
	if n := r.refreshes.Load(); n != source.DefaultMaxRefreshes {
		t.Fatalf("%d refreshes, want %d", n, source.DefaultMaxRefreshes)
	}
	_, err := r.read(t, b, m.Parts[0])
	if !strings.Contains(err.Error(), fmt.Sprintf("after %d refreshes", source.DefaultMaxRefreshes)) || !strings.Contains(err.Error(), "MDE_SAS_VALID_HOURS") {
		t.Errorf("error does not explain itself: %v", err)
	}
	r.checkSecrets(t, m)
}
