package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

const description = "Shop: catalog with a search index, carts, idempotent checkout over inventory and payment services"

// Config is the shop's configuration.
type Config struct {
	// Downstream is the base URL of the inventory and payment services
	// (`scalelab shop downstream`); empty runs them in this process.
	Downstream string
	// Protect puts timeouts, retries, breakers and bulkheads around the
	// downstream calls; false is the naive client of the cascade experiment.
	Protect   bool
	Inventory resilience.Config
	Payment   resilience.Config
	Database  resilience.Config
	DBTimeout time.Duration
	// MaxInFlight bounds the requests the shop handles at once, like a
	// server's worker pool; requests over it get 503 at once. 0: no bound.
	MaxInFlight int
	// A checkout left pending (its payment's outcome unknown) longer than
	// PendingTimeout is settled by the reconciler: paid if the payment
	// service has the charge, otherwise voided there and its stock returned.
	PendingTimeout time.Duration
	// Now is the clock of every timestamp the shop writes and of the reconciler's "stale"
	// decision (nil: time.Now); tests move it instead of sleeping.
	Now            func() time.Time
	ReconcileEvery time.Duration
	Worker         host.WorkerConfig
}

// DefaultConfig is what `up` runs with.
func DefaultConfig() Config {
	dep := resilience.DefaultConfig()
	dep.Timeout = 500 * time.Millisecond
	dep.BreakerFailures, dep.BreakerWindow, dep.BreakerDelay = 5, 10, 5*time.Second
	dep.MaxConcurrent, dep.MaxWait = 64, 20*time.Millisecond
	db := resilience.DefaultConfig()
	db.Timeout = 2 * time.Second
	db.Retries = 0
	db.BreakerDelay = 2 * time.Second
	db.MaxConcurrent, db.MaxWait = 128, 200*time.Millisecond
	return Config{
		Protect: true, Inventory: dep, Payment: dep, Database: db, DBTimeout: 2 * time.Second,
		MaxInFlight: 512, PendingTimeout: 30 * time.Second, ReconcileEvery: 5 * time.Second,
		Worker: host.DefaultWorkerConfig(),
	}
}

// Service is the shop.
type Service struct {
	cfg      Config
	baseURL  string
	store    *store
	ids      *snowflake.LeasedGenerator
	down     *downstreamClient
	database *resilience.Dependency
	inFlight chan struct{} // the MaxInFlight semaphore; nil without a bound
	metrics  *metrics
	logger   *slog.Logger

	admin *auth.AdminToken      // catalog writes
	sim   *downstream.Simulator // the in-process downstream services; nil with --downstream
	stop  context.CancelFunc
	done  sync.WaitGroup
}

var _ host.System = (*Service)(nil)

// Factory registers the shop with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{Name: "shop", Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) { return New(ctx, d, cfg) }}
}

// New builds the shop on the host's engines.
func New(ctx context.Context, d *host.Deps, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	st, err := openStore(ctx, d.DB)
	if err != nil {
		return nil, err
	}
	ids, err := d.NewGenerator(ctx, "shop", cfg.Worker, snowflake.Config{})
	if err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{cfg: cfg, baseURL: d.BaseURL, store: st, ids: ids, metrics: newMetrics(d.Registry), logger: d.Logger, stop: stop}
	base := cfg.Downstream
	var rt http.RoundTripper // nil: the network
	if base == "" {
		// In process: handler calls, no port (nobody else can reach it).
		s.sim = downstream.New(1)
		base, rt = "http://downstream.in-process", downstream.InProcess{Handler: s.sim.Handler(nil)}
	}
	deps := resilience.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"system": "shop"}, d.Registry))
	s.down = newDownstreamClient(base, rt, cfg.Protect, cfg.Inventory, cfg.Payment, deps)
	s.admin = d.Admin
	s.database = resilience.New("database", cfg.Database, deps)
	if cfg.MaxInFlight > 0 {
		s.inFlight = make(chan struct{}, cfg.MaxInFlight)
	}
	if cfg.ReconcileEvery > 0 {
		s.done.Add(1)
		go func() { defer s.done.Done(); s.reconcileLoop(runCtx) }()
	}
	return s, nil
}

// Simulator is the in-process inventory and payment services whose faults
// the console sets, or nil when the shop calls real ones (--downstream).
func (s *Service) Simulator() *downstream.Simulator { return s.sim }

// DependencyState is one dependency's breaker as the console shows it.
type DependencyState struct {
	Name    string `json:"name"`
	Breaker string `json:"breaker"` // closed, open, half-open, none (resilience off)
}

// Dependencies are the shop's dependencies and their breakers' states.
func (s *Service) Dependencies() []DependencyState {
	out := []DependencyState{}
	for _, d := range []*resilience.Dependency{s.down.inventory, s.down.payment, s.database} {
		if d != nil {
			out = append(out, DependencyState{Name: d.Name(), Breaker: d.Breaker()})
		}
	}
	return out
}

// Name implements host.System.
func (s *Service) Name() string { return "shop" }

// Description implements host.System.
func (s *Service) Description() string { return description }

// Checks implements host.System.
func (s *Service) Checks() []httpx.Check {
	return []httpx.Check{{Name: "worker-id", Fn: s.ids.Ready}}
}

// Close implements host.System.
func (s *Service) Close(ctx context.Context) error {
	s.stop()
	s.done.Wait()
	return s.ids.Close(ctx)
}

// limit is the MaxInFlight bound: a request that finds every slot taken is
// shed with 503 rather than queued, so that a stalled dependency's piled-up
// requests are visible as refusals, not as unbounded memory.
func (s *Service) limit(next http.Handler) http.Handler {
	if s.inFlight == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.inFlight <- struct{}{}:
		default:
			s.metrics.shed.Inc()
			httpx.WriteError(w, r, apperr.Retry(apperr.Unavailable, time.Second, "the shop is handling %d requests already; try again", cap(s.inFlight)))
			return
		}
		s.metrics.inFlight.Inc()
		defer func() { <-s.inFlight; s.metrics.inFlight.Dec() }()
		next.ServeHTTP(w, r)
	})
}

// db runs a database call under its deadline and protection.
func (s *Service) db(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.database.Do(ctx, false, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.DBTimeout)
		defer cancel()
		err := fn(ctx)
		if isAnswer(err) {
			return resilience.Permanent(err) // an answer, not a failing database
		}
		return err
	})
}

// isAnswer reports whether err is the store's definite answer about the
// data rather than a failure of the database.
func isAnswer(err error) bool {
	var oos *outOfStockError
	var ordered *cartOrderedError
	return errors.Is(err, errNotFound) || errors.Is(err, errCartClosed) || errors.Is(err, errNoProduct) ||
		errors.Is(err, errCartTooLarge) || errors.Is(err, errKeyTaken) || errors.Is(err, errEmptyCart) ||
		errors.As(err, &oos) || errors.As(err, &ordered)
}

func (s *Service) nextID() (int64, error) {
	id, err := s.ids.Next()
	if err != nil {
		return 0, apperr.Retry(apperr.Unavailable, time.Second, "cannot issue IDs right now")
	}
	return int64(id), nil
}

func idString(id int64) string { return strconv.FormatInt(id, 10) }
