package idgen

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// Config is the service's configuration.
type Config struct {
	Worker      host.WorkerConfig
	MaxBackward time.Duration // default 10ms
}

// DefaultConfig leases a worker ID, as `up` does.
func DefaultConfig() Config {
	return Config{Worker: host.DefaultWorkerConfig(), MaxBackward: 10 * time.Millisecond}
}

// Service is the idgen system.
type Service struct {
	gen *snowflake.LeasedGenerator
}

var _ host.System = (*Service)(nil)

const description = "Snowflake IDs: 64-bit, time-ordered, unique across 1,024 workers"

// Factory registers idgen with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{
		Name:        "idgen",
		Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) {
			return New(ctx, d, cfg)
		},
	}
}

// New builds the service; with a leased worker ID it claims one now.
func New(ctx context.Context, d *host.Deps, cfg Config) (*Service, error) {
	gen, err := d.NewGenerator(ctx, "idgen", cfg.Worker, snowflake.Config{MaxBackward: cfg.MaxBackward})
	if err != nil {
		return nil, fmt.Errorf("idgen: %w", err)
	}
	registerMetrics(d.Registry, gen.Generator)
	return &Service{gen: gen}, nil
}

func registerMetrics(reg prometheus.Registerer, gen *snowflake.Generator) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scalelab_idgen_ids_issued_total", Help: "Snowflake IDs issued.",
		}, func() float64 { return float64(gen.Stats().Issued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scalelab_idgen_clock_backwards_errors_total",
			Help: "Requests refused because the clock jumped back further than --max-backward.",
		}, func() float64 { return float64(gen.Stats().BackwardErrors) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scalelab_idgen_clock_backwards_waits_total",
			Help: "Small backward clock steps waited out.",
		}, func() float64 { return float64(gen.Stats().BackwardWaits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scalelab_idgen_sequence_exhausted_total",
			Help: "Times 4,096 IDs were issued within one millisecond and the next had to wait.",
		}, func() float64 { return float64(gen.Stats().ExhaustedWaits) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scalelab_idgen_worker_id", Help: "The worker ID in use.",
		}, func() float64 { return float64(gen.Worker()) }),
	)
}

// Name implements host.System.
func (s *Service) Name() string { return "idgen" }

// Description implements host.System.
func (s *Service) Description() string { return description }

// Handler implements host.System.
func (s *Service) Handler() http.Handler { return s.routes() }

// Checks implements host.System: not ready while the lease is not held.
func (s *Service) Checks() []httpx.Check {
	return []httpx.Check{{Name: "worker-id", Fn: s.gen.Ready}}
}

// Close implements host.System: release the worker ID for others.
func (s *Service) Close(ctx context.Context) error { return s.gen.Close(ctx) }
