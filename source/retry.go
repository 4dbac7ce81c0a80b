package source

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// retry is the one retry loop of this package: it runs op until it
// succeeds, returns an error wrapped with backoff.Permanent (returned
// unwrapped), ctx is done (ctx.Err()) or b gives up (op's last error).
// Waits are measured on clock; notify, when not nil, is told of every
// failure that will be retried and of the wait before the next attempt.
func retry(ctx context.Context, clock Clock, b backoff.BackOff, op func() error, notify func(err error, wait time.Duration)) error {
	return backoff.RetryNotifyWithTimer(op, backoff.WithContext(b, ctx), notify, &clockTimer{clock: clock})
}

// newBackoff returns an exponential backoff whose elapsed time is
// measured on clock.
func newBackoff(clock Clock, initial, maxInterval, maxElapsed time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMaxInterval(maxInterval),
		backoff.WithMaxElapsedTime(maxElapsed),
		backoff.WithClockProvider(clock),
	)
	b.Reset()
	return b
}

// atLeast is a backoff whose next wait is at least the server's hint
// (Retry-After) when one was given for the last failure.
type atLeast struct {
	backoff.BackOff
	hint time.Duration
}

func (a *atLeast) NextBackOff() time.Duration {
	d := a.BackOff.NextBackOff()
	if d != backoff.Stop && a.hint > d {
		d = a.hint
	}
	a.hint = 0
	return d
}

// clockTimer is backoff.Timer on a Clock, so that tests wait on a fake one.
type clockTimer struct {
	clock Clock
	c     <-chan time.Time
}

func (t *clockTimer) Start(d time.Duration) { t.c = t.clock.After(d) }
func (t *clockTimer) Stop()                 {}
func (t *clockTimer) C() <-chan time.Time   { return t.c }
