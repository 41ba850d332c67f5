package flashsale

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// The two ways to run order processing, on the same queue (the broker's
// "processing" group of the orders topic), both acking a message only
// after the order's outcome is committed:
//
//   - workers (the ECS model): a fixed pool of long-running consumers,
//     always warm, paid for by the second whether busy or not;
//   - functions (the Lambda model): an instance per concurrent message up
//     to a concurrency limit, started on demand with a cold-start delay,
//     reaped after an idle timeout, billed per invocation and per
//     GB-second of duration.

const processingGroup = "processing"

// WorkerConfig is a pool of workers.
type WorkerConfig struct {
	Concurrency int // orders processed at once
}

// FunctionConfig is a function runtime.
type FunctionConfig struct {
	Concurrency int           // instances at most
	ColdStart   time.Duration // a new instance's start-up
	IdleTimeout time.Duration // an idle instance lives this long
	MemoryMB    int           // for the GB-second bill
}

// DefaultFunctionConfig is a small Lambda: 64 instances, 250 ms cold
// starts, reaped after 10 s idle, 128 MB.
func DefaultFunctionConfig() FunctionConfig {
	return FunctionConfig{Concurrency: 64, ColdStart: 250 * time.Millisecond, IdleTimeout: 10 * time.Second, MemoryMB: 128}
}

// handle decodes and processes one delivery, settling it.
func (c *core) handle(ctx context.Context, m *broker.Message, run func(context.Context, int64) error) {
	var e orderEvent
	if err := json.Unmarshal(m.Data, &e); err != nil || e.OrderID <= 0 {
		c.logger.Warn("flashsale: a malformed order event, dropped", "data", string(m.Data))
		_ = m.Ack()
		return
	}
	if err := run(ctx, e.OrderID); err != nil {
		c.logger.Warn("flashsale: order not settled, it will come again", "order", e.OrderID, "err", err)
		_ = m.Nak()
		return
	}
	_ = m.Ack()
}

// runWorkers consumes the processing group with a fixed pool until ctx
// ends.
func (c *core) runWorkers(ctx context.Context, cfg WorkerConfig) error {
	jobs := make(chan *broker.Message)
	var wg sync.WaitGroup
	for i := 0; i < max(1, cfg.Concurrency); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range jobs {
				c.handle(ctx, m, func(ctx context.Context, id int64) error {
					_, err := c.process(ctx, id)
					c.metrics.invocations.WithLabelValues("worker", "warm").Inc()
					return err
				})
			}
		}()
	}
	cons, err := c.broker.Consume(ctx, ordersTopic, processingGroup, func(ctx context.Context, m *broker.Message) {
		select {
		case jobs <- m:
		case <-ctx.Done():
		}
	})
	if err != nil {
		close(jobs)
		wg.Wait()
		return err
	}
	<-ctx.Done()
	cons.Stop()
	close(jobs)
	wg.Wait()
	return nil
}

// Functions is a function runtime over the processing group.
type Functions struct {
	c   *core
	cfg FunctionConfig
	now func() time.Time

	mu        sync.Mutex
	idle      []*instance // most recently used last
	alive     int
	stats     FunctionStats
	slots     chan struct{} // concurrency
	sleepCold func(ctx context.Context, d time.Duration) error
	work      func(ctx context.Context, orderID int64) error // the function's body: process the order
}

type instance struct{ lastUsed time.Time }

// FunctionStats is the runtime's bill.
type FunctionStats struct {
	Invocations int64   `json:"invocations"`
	ColdStarts  int64   `json:"cold_starts"`
	BilledMS    int64   `json:"billed_ms"`  // durations rounded up to 1 ms
	GBSeconds   float64 `json:"gb_seconds"` // billed ms × memory
	PeakAlive   int     `json:"peak_instances"`
	Alive       int     `json:"instances"`
}

func newFunctions(c *core, cfg FunctionConfig) *Functions {
	return &Functions{c: c, cfg: cfg, now: time.Now, slots: make(chan struct{}, max(1, cfg.Concurrency)),
		work: func(ctx context.Context, id int64) error { _, err := c.process(ctx, id); return err },
		sleepCold: func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
}

// Stats is the bill so far.
func (f *Functions) Stats() FunctionStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Alive = f.alive
	return s
}

// acquire takes a warm idle instance, or starts one (a cold start).
func (f *Functions) acquire(ctx context.Context) (*instance, bool, error) {
	f.mu.Lock()
	if n := len(f.idle); n > 0 {
		in := f.idle[n-1]
		f.idle = f.idle[:n-1]
		f.mu.Unlock()
		return in, false, nil
	}
	f.alive++
	f.stats.ColdStarts++
	f.stats.PeakAlive = max(f.stats.PeakAlive, f.alive)
	f.c.metrics.instances.Set(float64(f.alive))
	f.mu.Unlock()
	if err := f.sleepCold(ctx, f.cfg.ColdStart); err != nil {
		f.mu.Lock()
		f.alive--
		f.mu.Unlock()
		return nil, true, err
	}
	return &instance{}, true, nil
}

func (f *Functions) release(in *instance) {
	in.lastUsed = f.now()
	f.mu.Lock()
	f.idle = append(f.idle, in)
	f.mu.Unlock()
}

// reap ends the instances idle longer than the idle timeout.
func (f *Functions) reap() {
	cut := f.now().Add(-f.cfg.IdleTimeout)
	f.mu.Lock()
	defer f.mu.Unlock()
	keep := f.idle[:0]
	for _, in := range f.idle {
		if in.lastUsed.After(cut) {
			keep = append(keep, in)
		} else {
			f.alive--
		}
	}
	f.idle = keep
	f.c.metrics.instances.Set(float64(f.alive))
}

// invoke runs one order on an instance and bills it.
func (f *Functions) invoke(ctx context.Context, id int64) error {
	in, cold, err := f.acquire(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	err = f.work(ctx, id)
	ms := int64(math.Ceil(float64(time.Since(start).Microseconds()) / 1000))
	f.release(in)
	f.mu.Lock()
	f.stats.Invocations++
	f.stats.BilledMS += ms
	f.stats.GBSeconds += float64(ms) / 1000 * float64(f.cfg.MemoryMB) / 1024
	f.mu.Unlock()
	start0 := "warm"
	if cold {
		start0 = "cold"
	}
	f.c.metrics.invocations.WithLabelValues("function", start0).Inc()
	f.c.metrics.billedMS.Add(float64(ms))
	return err
}

// Run consumes the processing group until ctx ends: each delivery waits
// for one of Concurrency slots (the broker holds the rest), then runs on
// an instance.
func (f *Functions) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	cons, err := f.c.broker.Consume(ctx, ordersTopic, processingGroup, func(ctx context.Context, m *broker.Message) {
		select {
		case f.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-f.slots }()
			f.c.handle(ctx, m, f.invoke)
		}()
	})
	if err != nil {
		return err
	}
	t := time.NewTicker(max(f.cfg.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cons.Stop()
			wg.Wait()
			return nil
		case <-t.C:
			f.reap()
		}
	}
}
