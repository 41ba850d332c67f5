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
//
// The window is kept as budgetBuckets counters, each a tenth of the TTL
// wide, so a request costs a few additions whatever the rate; an event
// counts for between 0.9 and 1 × TTL. (A list of timestamps trimmed on
// every request was a tenth of the balancer's CPU at 20,000 requests a
// second in a profile: it copied the whole window each time.)
type RetryBudget struct {
	Ratio        float64
	MinPerSecond float64
	TTL          time.Duration

	mu      sync.Mutex
	buckets [budgetBuckets]budgetBucket
}

const budgetBuckets = 10

type budgetBucket struct {
	epoch    int64 // which bucket-wide slice of time the counts are for
	requests int64
	retries  int64
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
	b.bucket(now).requests++
}

// Retry reports whether a retry may be made at now, and if so spends it.
func (b *RetryBudget) Retry(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.bucket(now)
	var requests, retries int64
	for i := range b.buckets {
		if bk := &b.buckets[i]; bk.epoch > cur.epoch-budgetBuckets {
			requests += bk.requests
			retries += bk.retries
		}
	}
	allowed := b.Ratio*float64(requests) + b.MinPerSecond*b.TTL.Seconds()
	if float64(retries)+1 > allowed {
		return false
	}
	cur.retries++
	return true
}

// bucket is now's counter, emptied first if it last counted an older
// slice of time.
func (b *RetryBudget) bucket(now time.Time) *budgetBucket {
	width := int64(b.TTL / budgetBuckets)
	if width <= 0 {
		width = 1
	}
	epoch := now.UnixNano() / width
	bk := &b.buckets[((epoch%budgetBuckets)+budgetBuckets)%budgetBuckets] // epochs before 1970 are negative
	if bk.epoch != epoch {
		*bk = budgetBucket{epoch: epoch}
	}
	return bk
}
