package snowflake

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Errors from Next.
var (
	ErrClockBackwards = errors.New("snowflake: clock moved backwards beyond the allowed bound")
	ErrLeaseLost      = errors.New("snowflake: worker-id lease is not held; refusing to issue ids")
	ErrTimeOverflow   = errors.New("snowflake: time is outside the 41-bit range of the epoch")
)

// Config configures a Generator. Zero values take the defaults.
type Config struct {
	Worker      int              // 0–1023
	Epoch       time.Time        // default DefaultEpoch
	MaxBackward time.Duration    // backward clock step waited out (default 10ms; negative: never wait)
	Now         func() time.Time // default time.Now
}

// Generator issues IDs for one worker. It is safe for concurrent use.
type Generator struct {
	epochMs     int64
	epoch       time.Time
	maxBackward int64 // ms
	now         func() time.Time

	mu     sync.Mutex
	worker int
	lastMs int64
	seq    int

	validUntil     atomic.Int64 // unix ms; issuing stops after it (lease mode)
	issued         atomic.Uint64
	backwardErrors atomic.Uint64
	backwardWaits  atomic.Uint64
	exhaustedWaits atomic.Uint64
}

// NewGenerator validates cfg and returns a generator.
func NewGenerator(cfg Config) (*Generator, error) {
	if cfg.Worker < 0 || cfg.Worker > MaxWorker {
		return nil, fmt.Errorf("snowflake: worker id %d out of range 0–%d", cfg.Worker, MaxWorker)
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = DefaultEpoch
	}
	if cfg.MaxBackward == 0 {
		cfg.MaxBackward = 10 * time.Millisecond
	}
	if cfg.MaxBackward < 0 {
		cfg.MaxBackward = 0
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Generator{
		epochMs:     cfg.Epoch.UnixMilli(),
		epoch:       cfg.Epoch,
		maxBackward: cfg.MaxBackward.Milliseconds(),
		now:         cfg.Now,
		worker:      cfg.Worker,
		lastMs:      -1,
	}
	g.validUntil.Store(math.MaxInt64)
	return g, nil
}

// Epoch returns the generator's epoch, needed to decode its IDs.
func (g *Generator) Epoch() time.Time { return g.epoch }

// Worker returns the current worker ID.
func (g *Generator) Worker() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.worker
}

// Next returns the next ID.
func (g *Generator) Next() (ID, error) {
	var id [1]ID
	_, err := g.fill(id[:])
	return id[0], err
}

// NextN fills dst with consecutive IDs under one lock acquisition and returns
// how many it wrote (fewer than len(dst) only together with an error).
func (g *Generator) NextN(dst []ID) (int, error) { return g.fill(dst) }

func (g *Generator) fill(dst []ID) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range dst {
		nowMs, err := g.tick()
		if err != nil {
			return i, err
		}
		dst[i] = compose(nowMs, g.worker, g.seq)
	}
	g.issued.Add(uint64(len(dst)))
	return len(dst), nil
}

// tick advances (lastMs, seq) to the next free slot; g.mu is held.
func (g *Generator) tick() (int64, error) {
	for {
		wall := g.now()
		if wall.UnixMilli() > g.validUntil.Load() {
			return 0, ErrLeaseLost
		}
		nowMs := wall.UnixMilli() - g.epochMs
		if nowMs < 0 || nowMs > maxMillis {
			return 0, ErrTimeOverflow
		}
		switch {
		case nowMs > g.lastMs:
			g.lastMs, g.seq = nowMs, 0
			return nowMs, nil
		case nowMs == g.lastMs:
			if g.seq < MaxSequence {
				g.seq++
				return nowMs, nil
			}
			// 4,096 IDs this millisecond: wait for the next one. The wait is
			// under a millisecond, too short for the scheduler to sleep.
			g.exhaustedWaits.Add(1)
			for g.now().UnixMilli()-g.epochMs <= g.lastMs {
				runtime.Gosched()
			}
		default: // the clock went backwards
			back := g.lastMs - nowMs
			if back > g.maxBackward {
				g.backwardErrors.Add(1)
				return 0, fmt.Errorf("%w: %d ms back (bound %d ms)", ErrClockBackwards, back, g.maxBackward)
			}
			g.backwardWaits.Add(1)
			time.Sleep(time.Duration(back) * time.Millisecond)
		}
	}
}

// setValidity is used by Lease: IDs are issued only until unixMs, and with
// the given worker ID. On a worker change the current millisecond is closed
// (seq set to its maximum), so the next ID lands in a later millisecond and
// IDs stay strictly increasing whatever the new worker number is.
func (g *Generator) setValidity(worker int, unixMs int64) {
	g.mu.Lock()
	if worker != g.worker {
		g.worker, g.seq = worker, MaxSequence
	}
	g.mu.Unlock()
	g.validUntil.Store(unixMs)
}

// Stats are the generator's counters.
type Stats struct {
	Issued         uint64 // IDs issued
	BackwardErrors uint64 // Next calls refused because the clock jumped back too far
	BackwardWaits  uint64 // small backward steps waited out
	ExhaustedWaits uint64 // times the 4,096-per-ms sequence ran out
}

// Stats returns a snapshot of the counters.
func (g *Generator) Stats() Stats {
	return Stats{
		Issued:         g.issued.Load(),
		BackwardErrors: g.backwardErrors.Load(),
		BackwardWaits:  g.backwardWaits.Load(),
		ExhaustedWaits: g.exhaustedWaits.Load(),
	}
}

// Valid reports whether the generator may issue IDs now.
func (g *Generator) Valid() bool { return g.now().UnixMilli() <= g.validUntil.Load() }

// Ready is Valid as a readiness check (httpx.Check's Fn): ErrLeaseLost
// while the generator may not issue IDs.
func (g *Generator) Ready(context.Context) error {
	if !g.Valid() {
		return ErrLeaseLost
	}
	return nil
}
