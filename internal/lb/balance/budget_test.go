package balance

import (
	"testing"
	"time"
)

func TestRetryBudgetIsAShareOfRecentRequests(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := &RetryBudget{Ratio: 0.2, MinPerSecond: 0.1, TTL: 10 * time.Second} // the floor: 1 retry per 10 s
	if !b.Retry(t0) || b.Retry(t0) {
		t.Fatal("with no traffic: exactly the floor's one retry")
	}
	for i := 0; i < 100; i++ {
		b.Request(t0.Add(time.Second))
	}
	granted := 0
	for b.Retry(t0.Add(2 * time.Second)) {
		granted++
	}
	if granted != 20 { // 0.2 × 100 + 1, less the one spent
		t.Fatalf("granted %d retries after 100 requests, want 20", granted)
	}
	// Eleven seconds later the old requests and retries no longer count.
	if !b.Retry(t0.Add(13*time.Second)) || b.Retry(t0.Add(13*time.Second)) {
		t.Fatal("after the TTL only the floor is left")
	}
}

// At a steady rate the budget is Ratio × the requests of the last TTL
// (within one bucket's width), however many came before.
func TestRetryBudgetSlidesWithSteadyTraffic(t *testing.T) {
	t0 := time.Unix(5000, 0)
	b := &RetryBudget{Ratio: 0.1, MinPerSecond: 0, TTL: 10 * time.Second}
	for ms := 0; ms < 30_000; ms++ { // 30 s at 1,000 requests a second
		b.Request(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	now := t0.Add(30 * time.Second)
	granted := 0
	for b.Retry(now) {
		granted++
	}
	// The window holds between 9 and 10 s of requests: 9,000 to 10,000.
	if granted < 900 || granted > 1000 {
		t.Fatalf("granted %d retries, want 900 to 1,000 (a tenth of the last 10 s)", granted)
	}
	if b.Retry(now.Add(10 * time.Second)) {
		t.Fatal("with no floor and no recent requests a retry was granted")
	}
	before := &RetryBudget{Ratio: 1, TTL: time.Second}
	before.Request(time.Unix(-100, 0)) // a clock before 1970 must not break it
	if !before.Retry(time.Unix(-100, 0)) {
		t.Fatal("one request, ratio 1: one retry")
	}
}
