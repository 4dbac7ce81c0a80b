package wire

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
)

// IsRetryable is the one classifier of Kafka-side failures: a broker error
// that Kafka marks retriable (leader change, request timed out, not enough
// replicas, …) or any failure of the connection (reset, cut, refused while
// a broker restarts, the attempt's own deadline) is worth trying again.
// Every other broker error (authorization, unknown producer, out-of-order
// sequence, invalid record, unknown topic) is final, and so is a cancelled
// context.
func IsRetryable(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	return !errors.Is(err, context.Canceled)
}

// Backoff is the shape of one retry loop: exponential from Initial, each
// wait at most Max, giving up MaxElapsed after the first failure (or after
// the last Reset).
type Backoff struct {
	Initial, Max, MaxElapsed time.Duration
}

// New returns the exponential backoff b describes.
func (b Backoff) New() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = b.Initial
	bo.MaxInterval = b.Max
	bo.MaxElapsedTime = b.MaxElapsed
	bo.Reset()
	return bo
}

// Retry runs op until it succeeds, returns an error IsRetryable rejects,
// b gives up, or ctx ends; notify (optional) hears of every retry. An op
// may return backoff.Permanent itself to stop at once.
func Retry(ctx context.Context, b Backoff, op func() error, notify func(err error, wait time.Duration)) error {
	return backoff.RetryNotify(func() error {
		err := op()
		var permanent *backoff.PermanentError
		if err != nil && !errors.As(err, &permanent) && !IsRetryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b.New(), ctx), notify)
}
