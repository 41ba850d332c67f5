package flashsale

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

const description = "Flash sale: thousands of buyers for a few units — sync on the database's hot row, or async through an atomic gate, an outbox and a queue of workers or functions; zero oversell"

// Config is one flash-sale API process.
type Config struct {
	Mode string // sync or async
	// Payment is the base URL of the payment service (`scalelab shop
	// downstream`); empty runs the simulator in this process.
	Payment        string
	PaymentTimeout time.Duration
	// Processor is what settles async orders in this process: "workers",
	// "functions", or "none" (separate `scalelab flashsale worker` or
	// `functions` processes do).
	Processor  string
	Workers    WorkerConfig
	Functions  FunctionConfig
	Deadline   time.Duration // a reservation unpaid this long is released by the sweeper
	SweepEvery time.Duration
	RelayPoll  time.Duration
	Now        func() time.Time
	WorkerID   host.WorkerConfig
	// Role: "api" (the default: sales, orders, relay, sweeper and the
	// in-process Processor), or "worker" / "functions": a processing
	// process of its own that serves only its health, metrics and stats.
	Role      string
	simulator *downstream.Simulator // tests: a shared in-process payment service
}

// DefaultConfig is what `up` runs: async, in-process workers.
func DefaultConfig() Config {
	return Config{Mode: ModeAsync, PaymentTimeout: 2 * time.Second, Processor: "workers", Workers: WorkerConfig{Concurrency: 16},
		Functions: DefaultFunctionConfig(), Deadline: 30 * time.Second, SweepEvery: time.Second, RelayPoll: 200 * time.Millisecond,
		WorkerID: host.DefaultWorkerConfig()}
}

// System is the flash sale in a host.
type System struct {
	*Service
	admin     *auth.AdminToken
	sim       *downstream.Simulator
	functions *Functions
	settled   *listeners
	role      string
	stop      context.CancelFunc
	done      sync.WaitGroup
}

var _ host.System = (*System)(nil)

// Factory registers the flash sale with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{Name: "flashsale", Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) { return New(ctx, d, cfg) }}
}

// newCore builds what the API and the processors share.
func newCore(ctx context.Context, d *host.Deps, cfg Config) (*core, *downstream.Simulator, error) {
	if cfg.Mode != ModeSync && cfg.Mode != ModeAsync {
		return nil, nil, apperr.Usagef("--mode: sync or async, not %q", cfg.Mode)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	st, err := openStore(ctx, d.DB)
	if err != nil {
		return nil, nil, err
	}
	sim := cfg.simulator
	base, client := cfg.Payment, &http.Client{}
	if base == "" {
		if sim == nil {
			sim = downstream.New(1)
		}
		base, client = "http://downstream.in-process", &http.Client{Transport: downstream.InProcess{Handler: sim.Handler(nil)}}
	}
	var gate Gate = newMemGate()
	if d.Redis != nil {
		gate = newRedisGate(d.Redis, d.Engines.Namespace)
	}
	c := &core{mode: cfg.Mode, store: st, gate: gate, pay: &payments{base: base, client: client, timeout: cfg.PaymentTimeout},
		broker: d.Broker, now: cfg.Now, logger: d.Logger, metrics: newMetrics(d.Registry), deadline: cfg.Deadline, sales: map[int64]*Sale{}}
	return c, sim, nil
}

// New builds the API process and starts its background work: the relay
// and the subscribers (async), the sweeper, and the in-process processor.
func New(ctx context.Context, d *host.Deps, cfg Config) (*System, error) {
	c, sim, err := newCore(ctx, d, cfg)
	if err != nil {
		return nil, err
	}
	ids, err := d.NewGenerator(ctx, "flashsale", cfg.WorkerID, snowflake.Config{})
	if err != nil {
		return nil, fmt.Errorf("flashsale: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &System{Service: &Service{core: c, ids: ids, relay: make(chan struct{}, 1), refusals: newRefusalLog(), recorder: newRecorder(c.store),
		reservations: newReservations(c.gate)},
		admin: d.Admin, sim: sim, stop: stop, settled: newListeners()}
	s.role = cfg.Role
	c.startGroups(runCtx, s.run)
	switch cfg.Role {
	case "worker", "functions":
		if cfg.Mode != ModeAsync {
			stop()
			return nil, apperr.Usagef("a %s process serves the async mode", cfg.Role)
		}
		// A process of its own shares the API's engines: the gate must be
		// Redis (an in-process gate is the API's alone) and the broker a
		// server (an embedded one lives inside the API process).
		if d.Redis == nil || d.Engines.Broker == "" || d.Engines.Broker == "embedded://" {
			stop()
			return nil, apperr.Usagef("flashsale %s: give the API's --db, --cache redis://… and --broker nats://… (or amqp://…)", cfg.Role)
		}
		if cfg.Role == "worker" {
			s.run(func() { _ = c.runWorkers(runCtx, cfg.Workers) })
		} else {
			s.functions = newFunctions(c, cfg.Functions)
			s.run(func() { _ = s.functions.Run(runCtx) })
		}
		return s, nil
	case "", "api":
	default:
		stop()
		return nil, fmt.Errorf("flashsale: role %q", cfg.Role)
	}
	s.run(func() { c.runSweeper(runCtx, cfg.SweepEvery) })
	if d.Broker != nil {
		sub, err := d.Broker.Subscribe(runCtx, settledTopic, s.settled.deliver)
		if err != nil {
			stop()
			return nil, fmt.Errorf("flashsale: subscribe to settlements: %w", err)
		}
		s.run(func() { <-runCtx.Done(); sub.Stop() })
	}
	if cfg.Mode == ModeAsync {
		for i := 0; i < groupRunners; i++ {
			s.run(func() { s.recorder.run(runCtx) })
			s.run(func() { s.reservations.run(runCtx) })
		}
		s.run(func() { s.runRelay(runCtx, cfg.RelayPoll) })
		if err := s.startSubscribers(runCtx); err != nil {
			stop()
			return nil, err
		}
		switch cfg.Processor {
		case "workers":
			s.run(func() { _ = c.runWorkers(runCtx, cfg.Workers) })
		case "functions":
			s.functions = newFunctions(c, cfg.Functions)
			s.run(func() { _ = s.functions.Run(runCtx) })
		case "none":
		default:
			stop()
			return nil, apperr.Usagef("--processor: workers, functions or none, not %q", cfg.Processor)
		}
	}
	return s, nil
}

func (s *System) run(fn func()) {
	s.done.Add(1)
	go func() { defer s.done.Done(); fn() }()
}

// Name implements host.System.
func (s *System) Name() string { return "flashsale" }

// Description implements host.System.
func (s *System) Description() string { return description }

// Checks implements host.System.
func (s *System) Checks() []httpx.Check {
	return []httpx.Check{{Name: "worker-id", Fn: s.ids.Ready}}
}

// Close implements host.System.
func (s *System) Close(ctx context.Context) error {
	s.stop()
	s.done.Wait()
	return s.ids.Close(ctx)
}

// Simulator is the in-process payment service, or nil with --payment.
func (s *System) Simulator() *downstream.Simulator { return s.sim }
