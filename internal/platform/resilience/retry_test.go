package resilience

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetryUntilSuccessPermanentOrAttempts(t *testing.T) {
	ctx := context.Background()
	b := Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond}
	calls := 0
	if err := Retry(ctx, b, func(context.Context) error {
		calls++
		if calls < 4 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 4 {
		t.Fatalf("success on the 4th call: %v after %d calls", err, calls)
	}
	stop := errors.New("stop")
	calls = 0
	if err := Retry(ctx, b, func(context.Context) error { calls++; return Permanent(stop) }); err != stop || calls != 1 {
		t.Fatalf("permanent: %v after %d calls, want the cause after 1", err, calls)
	}
	calls = 0
	b.Attempts = 3
	if err := Retry(ctx, b, func(context.Context) error { calls++; return errors.New("no") }); err == nil || calls != 3 {
		t.Fatalf("3 attempts: %v after %d calls", err, calls)
	}
}

func TestRetryStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	called := make(chan struct{}, 1)
	done := make(chan error)
	go func() {
		done <- Retry(ctx, Backoff{Initial: time.Hour}, func(context.Context) error {
			called <- struct{}{}
			return errors.New("down")
		})
	}()
	<-called // the first call happens at once; then Retry waits an hour
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || err.Error() == "" {
			t.Fatalf("err %v, want context.Canceled wrapping the last error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Retry slept through its context's end")
	}
}

func TestBackoffGrowsToItsCeiling(t *testing.T) {
	b := Backoff{Initial: 10 * time.Millisecond, Max: 35 * time.Millisecond}
	var got []time.Duration
	for d := b.Initial; len(got) < 5; d = b.next(d) {
		got = append(got, d)
	}
	want := []time.Duration{10, 20, 35, 35, 35}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", got, want)
		}
	}
	if d := (Backoff{Initial: 5 * time.Millisecond}).next(5 * time.Millisecond); d != 5*time.Millisecond {
		t.Fatalf("no Max: %v, want a constant 5ms", d)
	}
}
