package source

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is the time source of the rate limiter and the retry loops, so
// that tests can run them without really waiting.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock returns the wall clock.
func RealClock() Clock { return realClock{} }

// Limit allows N calls in any window of length Per.
type Limit struct {
	N   int
	Per time.Duration
}

// ExportLimits are the Defender export APIs' documented limits: 5 calls a
// minute and 20 calls an hour.
func ExportLimits() []Limit {
	return []Limit{{N: 5, Per: time.Minute}, {N: 20, Per: time.Hour}}
}

// RateLimiter is a sliding-window log limiter over several limits: a call
// is allowed when, for every limit, fewer than N calls were recorded in the
// last Per. It is safe for concurrent use.
type RateLimiter struct {
	clock  Clock
	limits []Limit
	maxPer time.Duration

	mu  sync.Mutex
	log []time.Time
}

// NewRateLimiter returns a limiter enforcing every limit (nil clock = RealClock).
func NewRateLimiter(clock Clock, limits ...Limit) *RateLimiter {
	if clock == nil {
		clock = RealClock()
	}
	l := &RateLimiter{clock: clock}
	for _, lim := range limits {
		if lim.N <= 0 || lim.Per <= 0 {
			continue
		}
		l.limits = append(l.limits, lim)
		if lim.Per > l.maxPer {
			l.maxPer = lim.Per
		}
	}
	return l
}

// Wait blocks until a call is allowed by every limit, then records it.
func (l *RateLimiter) Wait(ctx context.Context) error {
	_, err := l.Acquire(ctx)
	return err
}

// Acquire is Wait for a call whose end the caller reports by calling done
// (once; later calls do nothing): done moves the call's record from the
// time it was allowed to the time done is called. A call reaches the
// server some time after it was allowed (token acquisition, connection
// setup) but never after its answer arrived, so windows counted from the
// answers hold on the server's side too.
func (l *RateLimiter) Acquire(ctx context.Context) (done func(), err error) {
	for {
		if err := ctx.Err(); err != nil {
			return func() {}, err
		}
		at, wait := l.reserve()
		if wait <= 0 {
			var once sync.Once
			return func() { once.Do(func() { l.restamp(at) }) }, nil
		}
		select {
		case <-ctx.Done():
			return func() {}, ctx.Err()
		case <-l.clock.After(wait):
		}
	}
}

// restamp moves the record of a call allowed at "at" to now.
func (l *RateLimiter) restamp(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if !now.After(at) {
		return
	}
	for i, t := range l.log {
		if t.Equal(at) {
			l.log[i] = now
			slices.SortFunc(l.log, func(a, b time.Time) int { return a.Compare(b) })
			return
		}
	}
}

// reserve records a call and returns its time and 0 when one is allowed
// now, otherwise how long to wait before trying again.
func (l *RateLimiter) reserve() (time.Time, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	// Forget calls older than the longest window.
	i := 0
	for i < len(l.log) && now.Sub(l.log[i]) >= l.maxPer {
		i++
	}
	l.log = l.log[i:]
	var wait time.Duration
	for _, lim := range l.limits {
		n := 0
		for j := len(l.log) - 1; j >= 0 && now.Sub(l.log[j]) < lim.Per; j-- {
			n++
		}
		if n >= lim.N {
			oldest := l.log[len(l.log)-lim.N]
			if w := oldest.Add(lim.Per).Sub(now); w > wait {
				wait = w
			}
		}
	}
	if wait > 0 {
		return now, wait
	}
	l.log = append(l.log, now)
	return now, 0
}
