package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/tvm2kafka/tvm2kafka/internal/fakes"
	"github.com/tvm2kafka/tvm2kafka/source"
)

// A call counts from when its answer arrived (done), not from when it was
// allowed: the first call of a run reaches Defender only after the token
// and the connection, so counting from the allowance let the 6th call
// reach Defender less than a minute after the 1st (seen end to end in
// TestExportRateLimitAcrossSASRefreshes).
func TestRateLimiterAcquireCountsFromDone(t *testing.T) {
	clock := fakes.NewClock(t0)
	l := source.NewRateLimiter(clock, source.ExportLimits()...)
	done, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second) // token, connection, answer
	done()
	done() // a second call changes nothing
	for range 4 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := clock.Now().Sub(t0); d != 63*time.Second {
		t.Fatalf("6th call allowed %v after the 1st was allowed, want 63s (a minute after its answer)", d)
	}
}
