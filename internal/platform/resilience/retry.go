package resilience

import (
	"context"
	"fmt"
	"time"
)

// Backoff is how long Retry waits between attempts: Initial, growing by
// Factor (2 when 0) up to Max (Initial when 0). Attempts bounds the calls
// (0: as many as the context allows).
type Backoff struct {
	Initial  time.Duration
	Max      time.Duration
	Factor   float64
	Attempts int
}

// next is the wait after a wait of d.
func (b Backoff) next(d time.Duration) time.Duration {
	f := b.Factor
	if f == 0 {
		f = 2
	}
	n := time.Duration(float64(d) * f)
	if ceil := max(b.Max, b.Initial); n > ceil {
		n = ceil
	}
	return n
}

// Retry calls fn until it succeeds, returns a Permanent error (whose cause
// Retry returns), runs out of attempts, or ctx ends, waiting between
// calls as b says. It is the one retry loop for work that is not a call to
// a guarded dependency (that is Dependency.Do): a leader election awaited,
// a queue write retried, the next endpoint tried. When ctx ends first the
// last error is returned wrapped with ctx's.
func Retry(ctx context.Context, b Backoff, fn func(ctx context.Context) error) error {
	wait := b.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if pe, ok := err.(permanentError); ok {
			return pe.err
		}
		if b.Attempts > 0 && attempt >= b.Attempts {
			return err
		}
		if !Sleep(ctx, wait) {
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		}
		wait = b.next(wait)
	}
}

// Sleep waits d, or less if ctx ends first; it reports whether it waited
// the whole of d. A wait that ignores its context holds up a shutdown or a
// caller who has already given up.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
