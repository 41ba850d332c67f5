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
