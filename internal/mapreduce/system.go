package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

const description = "MapReduce over the broker: splits, map and reduce tasks on workers, sorted runs in the blob store, leases, re-execution and backup tasks"

// Config is one MapReduce process.
type Config struct {
	// Role: "coordinator" (the default: the job API and the coordinator,
	// plus Workers in-process workers) or "worker" (a worker process of
	// its own, serving only its health, metrics and stats).
	Role    string
	Policy  Policy
	Workers int // in-process workers beside a coordinator
	Worker  WorkerConfig
	Now     func() time.Time
	// ClusterKey is the file of the cluster key every coordinator and
	// worker of a deployment holds: each message on the broker is sealed
	// with it. Empty: none (loopback demos, and `up`).
	ClusterKey string
}

// DefaultConfig is what `up` runs: the coordinator and two workers in
// one process.
func DefaultConfig() Config {
	return Config{Role: "coordinator", Policy: DefaultPolicy(), Workers: 2, Worker: DefaultWorkerConfig()}
}

// System is MapReduce in a host.
type System struct {
	role    string
	coord   *Coordinator
	workers []*Worker
	admin   *auth.AdminToken
	stop    context.CancelFunc
	done    sync.WaitGroup
	failed  chan error
}

var _ host.System = (*System)(nil)

// Factory registers MapReduce with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{Name: "mapreduce", Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) { return New(ctx, d, cfg) }}
}

// New starts the coordinator and its in-process workers, or one worker.
func New(ctx context.Context, d *host.Deps, cfg Config) (*System, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Policy.Lease <= 0 {
		cfg.Policy = DefaultPolicy()
	}
	if d.Broker == nil || d.Blob == nil {
		return nil, errors.New("mapreduce: needs the broker and the blob store")
	}
	if cfg.Worker.Heartbeat <= 0 || cfg.Worker.Heartbeat > cfg.Policy.Lease/3 {
		cfg.Worker.Heartbeat = min(time.Second, cfg.Policy.Lease/4)
	}
	key, err := auth.LoadKey(cfg.ClusterKey)
	if err != nil {
		return nil, err
	}
	if key == nil && d.Engines.Broker != "" && d.Engines.Broker != "embedded://" {
		d.Logger.Warn("mapreduce: no --cluster-key: tasks and worker reports on the broker are not authenticated; keep the broker on loopback")
	}
	met := newMetrics(d.Registry)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &System{role: cfg.Role, admin: d.Admin, stop: stop, failed: make(chan error, 1+cfg.Workers)}
	switch cfg.Role {
	case "worker":
		if d.Engines.Broker == "" || d.Engines.Broker == "embedded://" {
			stop()
			return nil, apperr.Usagef("mapreduce worker: give the coordinator's --broker nats://… (or amqp://…) and a --blob every worker shares")
		}
		cfg.Workers = 1
	case "", "coordinator":
		s.role = "coordinator"
		st, err := openStore(ctx, d.DB)
		if err != nil {
			stop()
			return nil, err
		}
		s.coord = newCoordinator(st, d.Broker, d.Blob, cfg.Policy, cfg.Now, d.Logger, met)
		s.coord.key, s.coord.blobURL = key, d.Engines.Blob
		s.run(func() error { return s.coord.Run(runCtx) })
		select {
		case <-s.coord.Ready():
		case err := <-s.failed:
			stop()
			return nil, err
		}
	default:
		stop()
		return nil, apperr.Usagef("mapreduce: role %q (coordinator or worker)", cfg.Role)
	}
	for i := 0; i < cfg.Workers; i++ {
		wc := cfg.Worker
		if wc.ID != "" && cfg.Workers > 1 {
			wc.ID = fmt.Sprintf("%s-%d", wc.ID, i)
		}
		w := newWorker(wc, d.Broker, d.Blob, d.Logger, met)
		w.key = key
		s.workers = append(s.workers, w)
		s.run(func() error { return w.Run(runCtx) })
	}
	return s, nil
}

func (s *System) run(fn func() error) {
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		if err := fn(); err != nil {
			s.failed <- err
		}
	}()
}

// Name implements host.System.
func (s *System) Name() string { return "mapreduce" }

// Description implements host.System.
func (s *System) Description() string { return description }

// Checks implements host.System: a coordinator or worker whose loop
// stopped on an error is not ready.
func (s *System) Checks() []httpx.Check {
	return []httpx.Check{{Name: "mapreduce-loops", Fn: func(context.Context) error {
		select {
		case err := <-s.failed:
			s.failed <- err
			return err
		default:
			return nil
		}
	}}}
}

// Close implements host.System: workers give their attempts back (the
// coordinator relaunches them at once), then the coordinator stops.
func (s *System) Close(ctx context.Context) error {
	s.stop()
	s.done.Wait()
	return nil
}

// Coordinator is the process's coordinator, or nil in a worker process.
func (s *System) Coordinator() *Coordinator { return s.coord }
