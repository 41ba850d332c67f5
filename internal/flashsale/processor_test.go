package flashsale

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The function runtime's lifecycle on an injected clock: concurrent
// invocations start instances cold; a later one reuses a warm instance;
// instances idle past the timeout are reaped, and the next invocation is
// cold again; every invocation is billed at least 1 ms.
func TestFunctionsColdStartsWarmReuseAndReaping(t *testing.T) {
	c := &core{metrics: newMetrics(prometheus.NewRegistry()), logger: slog.New(slog.DiscardHandler)}
	f := newFunctions(c, FunctionConfig{Concurrency: 3, ColdStart: 250 * time.Millisecond, IdleTimeout: 10 * time.Second, MemoryMB: 512})
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	f.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var colds []time.Duration
	f.sleepCold = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		colds = append(colds, d)
		mu.Unlock()
		return nil
	}
	release := make(chan struct{})
	f.work = func(ctx context.Context, id int64) error {
		if id <= 3 {
			<-release // the first three overlap
		}
		return nil
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for id := int64(1); id <= 3; id++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f.invoke(ctx, id) }()
	}
	for f.Stats().ColdStarts < 3 { // all three are inside their instances
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	st := f.Stats()
	if st.ColdStarts != 3 || st.Alive != 3 || st.PeakAlive != 3 || len(colds) != 3 || colds[0] != 250*time.Millisecond {
		t.Fatalf("after three overlapping invocations: %+v, cold sleeps %v", st, colds)
	}
	advance(time.Second)
	if err := f.invoke(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.ColdStarts != 3 || st.Invocations != 4 {
		t.Fatalf("a fourth invocation with warm instances idle: %+v", st)
	}
	advance(9500 * time.Millisecond) // instances 1–3 idle 10.5 s, instance of #4 idle 9.5 s
	f.reap()
	if st := f.Stats(); st.Alive != 1 {
		t.Fatalf("after reaping: %d alive, want 1 (the one used a second later)", st.Alive)
	}
	advance(time.Second)
	f.reap()
	if err := f.invoke(ctx, 5); err != nil {
		t.Fatal(err)
	}
	st = f.Stats()
	if st.Alive != 1 || st.ColdStarts != 4 || st.Invocations != 5 || st.BilledMS < 5 {
		t.Fatalf("after every instance was reaped, a cold start: %+v", st)
	}
	if want := float64(st.BilledMS) / 1000 * 0.5; st.GBSeconds < want-1e-9 || st.GBSeconds > want+1e-9 {
		t.Fatalf("GB-seconds %v, want billed ms × 0.5 GB = %v", st.GBSeconds, want)
	}
}
