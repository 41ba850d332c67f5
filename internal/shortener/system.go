package shortener

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/cache"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/ratelimit"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

const description = "URL shortener: cached redirects, click analytics over the broker"

// Config is the shortener's configuration.
type Config struct {
	Permanent   bool          // 301 instead of 302
	CreateLimit string        // per-client limit on POST /api/v1/links, e.g. "60/m"; "off" for none
	CacheTTL    time.Duration // how long a found link stays cached
	NegativeTTL time.Duration // how long "no such code" stays cached
	ClickBuffer int           // click events buffered in front of the broker
	Worker      host.WorkerConfig
	// Now is the clock of expiry decisions (nil: time.Now); tests move it.
	Now func() time.Time
}

// DefaultConfig is what `up` runs with.
func DefaultConfig() Config {
	return Config{
		CreateLimit: "60/m",
		CacheTTL:    time.Hour,
		NegativeTTL: 30 * time.Second,
		ClickBuffer: 65536,
		Worker:      host.DefaultWorkerConfig(),
	}
}

// Service is the shortener system.
type Service struct {
	cfg     Config
	admin   *auth.AdminToken
	baseURL string
	store   *store
	cache   cache.Cache
	ids     *snowflake.LeasedGenerator
	urls    URLValidator
	limiter ratelimit.Limiter
	clicks  *clickPublisher
	counter *clickAggregator
	loads   singleflight.Group
	lookups *prometheus.CounterVec
	// The lookups children, resolved once: a label lookup per redirect
	// costs more than the counter.
	hits, negativeHits, dbHits, dbMisses, lookupErrors prometheus.Counter
	logger                                             *slog.Logger
}

var _ host.System = (*Service)(nil)

// Factory registers the shortener with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{
		Name:        "shortener",
		Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) {
			return New(ctx, d, cfg)
		},
	}
}

// New builds the shortener on the host's engines: migrate the schema, lease
// a worker ID for codes, start the click publisher and aggregator.
func New(ctx context.Context, d *host.Deps, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	limit, err := ratelimit.ParseLimit(cfg.CreateLimit)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, d.DB)
	if err != nil {
		return nil, err
	}
	ids, err := d.NewGenerator(ctx, "shortener", cfg.Worker, snowflake.Config{})
	if err != nil {
		return nil, fmt.Errorf("shortener: %w", err)
	}
	s := &Service{admin: d.Admin,
		cfg:     cfg,
		baseURL: d.BaseURL,
		store:   st,
		cache:   d.Cache,
		ids:     ids,
		urls:    NewURLValidator(d.BaseURL),
		limiter: ratelimit.New(limit, d.Redis, d.Engines.Namespace+":shortener-create"),
		logger:  d.Logger,
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_shortener_lookups_total",
			Help: "Redirect lookups by where the answer came from: cache (hit), negative (cached miss), db, db_miss, error.",
		}, []string{"source"}),
	}
	d.Registry.MustRegister(s.lookups)
	s.hits, s.negativeHits = s.lookups.WithLabelValues("cache"), s.lookups.WithLabelValues("negative")
	s.dbHits, s.dbMisses = s.lookups.WithLabelValues("db"), s.lookups.WithLabelValues("db_miss")
	s.lookupErrors = s.lookups.WithLabelValues("error")
	m := newClickMetrics(d.Registry)
	s.clicks = newClickPublisher(d.Broker, cfg.ClickBuffer, m, d.Logger)
	if s.counter, err = startClickAggregator(ctx, d.Broker, st, m, d.Logger); err != nil {
		s.clicks.Close()
		ids.Close(context.Background())
		return nil, fmt.Errorf("shortener: start click aggregator: %w", err)
	}
	return s, nil
}

// Name implements host.System.
func (s *Service) Name() string { return "shortener" }

// Description implements host.System.
func (s *Service) Description() string { return description }

// Checks implements host.System.
func (s *Service) Checks() []httpx.Check {
	return []httpx.Check{{Name: "worker-id", Fn: s.ids.Ready}}
}

// Close implements host.System: flush click events to the broker, count
// what was delivered, release the worker ID.
func (s *Service) Close(ctx context.Context) error {
	s.clicks.Close()
	s.counter.Close()
	return s.ids.Close(ctx)
}
