package balance

import (
	"sync"
	"time"
)

// RetryBudget bounds retries to a share of recent requests, as Finagle's
// and Linkerd's budgets do: each request deposits Ratio of a retry, each
// retry withdraws one, and MinPerSecond retries a second are allowed
// whatever the traffic (so that a quiet balancer may still retry). The
// deposits of the last TTL only count: a burst of failures after a long
// calm cannot spend an hour's savings. A budget, unlike a retry count,
// cannot multiply an outage's load: with Ratio 0.2, at most 1.2 × the
// requests reach the backends.
type RetryBudget struct {
	Ratio        float64
	MinPerSecond float64
	TTL          time.Duration

	mu       sync.Mutex
	deposits []time.Time // one per request within TTL (oldest first)
	spent    []time.Time // one per retry within TTL
}

// DefaultRetryBudget is Linkerd's: 20 % of requests, 10 retries a second,
// over 10 s.
func DefaultRetryBudget() *RetryBudget {
	return &RetryBudget{Ratio: 0.2, MinPerSecond: 10, TTL: 10 * time.Second}
}

// Request records a request at now.
func (b *RetryBudget) Request(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trim(now)
	if len(b.deposits) < 1_000_000 { // bounded memory at any rate
		b.deposits = append(b.deposits, now)
	}
}

// Retry reports whether a retry may be made at now, and if so spends it.
func (b *RetryBudget) Retry(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trim(now)
	allowed := b.Ratio*float64(len(b.deposits)) + b.MinPerSecond*b.TTL.Seconds()
	if float64(len(b.spent))+1 > allowed {
		return false
	}
	b.spent = append(b.spent, now)
	return true
}

func (b *RetryBudget) trim(now time.Time) {
	cut := now.Add(-b.TTL)
	drop := func(ts []time.Time) []time.Time {
		i := 0
		for i < len(ts) && ts[i].Before(cut) {
			i++
		}
		if i > 0 {
			ts = append(ts[:0], ts[i:]...)
		}
		return ts
	}
	b.deposits, b.spent = drop(b.deposits), drop(b.spent)
}
