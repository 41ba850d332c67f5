package feed

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/ratelimit"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

const description = "News feed: fan-out on write, on read and hybrid, the celebrity problem, a web app"

// Config is the feed's configuration.
type Config struct {
	// Mode is how timelines are built unless a user chose otherwise.
	Mode timeline.Mode
	// Celebrity is the follower count from which hybrid pulls an author.
	Celebrity int
	// TimelineSets is how many home timelines the in-process cache keeps
	// (Redis keeps as many as its memory allows).
	TimelineSets int
	// TimelineCap is the entries a cached home timeline keeps (older
	// pages are read from the store).
	TimelineCap int
	// AuthorCap is the post IDs an author's cached list keeps.
	AuthorCap int
	// BatchSize is the followers one fan-out job writes to.
	BatchSize int
	// Workers is the fan-out consumers this instance runs.
	Workers int
	// AckWait is how long a fan-out job a worker took and did not finish
	// (it died) waits before another worker gets it.
	AckWait time.Duration
	// WriteLimit is each user's limit on writes, e.g. "120/m:30"; "off".
	WriteLimit string
	// SignupLimit is each client address's limit on new accounts.
	SignupLimit string
	// TimelineTTL is how long an unread timeline stays cached; a reader
	// back after longer gets it rebuilt from the store on its first read.
	TimelineTTL time.Duration
	// EntityTTL bounds how long a cached post, user or follow list lives.
	EntityTTL time.Duration
	Worker    host.WorkerConfig
	// Now is the clock of every decision (nil: time.Now).
	Now func() time.Time
	// fanoutHook, when set (tests), sees every fan-out job first; true
	// leaves the job unsettled, as a worker killed holding it would.
	fanoutHook func(job) (abandon bool)
}

// DefaultConfig is what `up` runs with.
func DefaultConfig() Config {
	return Config{
		Mode:         timeline.Hybrid,
		Celebrity:    10_000,
		TimelineCap:  800,
		TimelineSets: 100_000,
		AuthorCap:    200,
		BatchSize:    1000,
		Workers:      4,
		AckWait:      10 * time.Second,
		WriteLimit:   "120/m:30",
		SignupLimit:  "30/h:10",
		TimelineTTL:  72 * time.Hour,
		EntityTTL:    time.Hour,
		Worker:       host.DefaultWorkerConfig(),
	}
}

func (c Config) validate() error {
	switch c.Mode {
	case timeline.Push, timeline.Pull, timeline.Hybrid:
	default:
		return fmt.Errorf("feed: mode must be push, pull or hybrid")
	}
	if c.Celebrity < 1 || c.TimelineCap < 10 || c.AuthorCap < 10 || c.BatchSize < 1 || c.Workers < 1 || c.AckWait <= 0 {
		return fmt.Errorf("feed: celebrity, batch size and workers must be ≥ 1, the caps ≥ 10")
	}
	return nil
}

// Service is the feed system.
type Service struct {
	cfg     Config
	policy  timeline.Policy
	admin   *auth.AdminToken
	store   *store
	caches  *caches
	ids     *snowflake.LeasedGenerator
	broker  broker.Broker
	writes  ratelimit.Limiter
	signups ratelimit.Limiter
	fanout  *fanout
	live    *live
	metrics *metrics
	logger  *slog.Logger
}

var _ host.System = (*Service)(nil)

// Factory registers the feed with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{
		Name:        "feed",
		Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) {
			return New(ctx, d, cfg)
		},
	}
}

// New builds the feed on the host's engines: migrate the schema, lease a
// worker ID for post IDs, open the caches, start the fan-out workers and
// the live-update listener.
func New(ctx context.Context, d *host.Deps, cfg Config) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	writeLimit, err := ratelimit.ParseLimit(cfg.WriteLimit)
	if err != nil {
		return nil, fmt.Errorf("feed: write limit: %w", err)
	}
	signupLimit, err := ratelimit.ParseLimit(cfg.SignupLimit)
	if err != nil {
		return nil, fmt.Errorf("feed: signup limit: %w", err)
	}
	st, err := openStore(ctx, d.DB)
	if err != nil {
		return nil, err
	}
	ids, err := d.NewGenerator(ctx, "feed", cfg.Worker, snowflake.Config{})
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	s := &Service{
		cfg:     cfg,
		policy:  timeline.Policy{Mode: cfg.Mode, Celebrity: cfg.Celebrity},
		admin:   d.Admin,
		store:   st,
		caches:  newCaches(d.Cache, cfg),
		ids:     ids,
		broker:  d.Broker,
		writes:  ratelimit.New(writeLimit, d.Redis, d.Engines.Namespace+":feed-write"),
		signups: ratelimit.New(signupLimit, d.Redis, d.Engines.Namespace+":feed-signup"),
		metrics: newMetrics(d.Registry),
		logger:  d.Logger,
	}
	if s.fanout, err = startFanout(ctx, s); err != nil {
		ids.Close(context.Background())
		return nil, err
	}
	if s.live, err = startLive(ctx, s); err != nil {
		s.fanout.stop()
		ids.Close(context.Background())
		return nil, err
	}
	return s, nil
}

// Name implements host.System.
func (s *Service) Name() string { return "feed" }

// Description implements host.System.
func (s *Service) Description() string { return description }

// Checks implements host.System.
func (s *Service) Checks() []httpx.Check {
	return []httpx.Check{{Name: "worker-id", Fn: s.ids.Ready}}
}

// Close implements host.System: stop the live listener and the fan-out
// workers (a job they hold is redelivered to another instance, or to this
// one when it starts again), release the worker ID.
func (s *Service) Close(ctx context.Context) error {
	s.live.stop()
	s.fanout.stop()
	return s.ids.Close(ctx)
}

func (s *Service) nextID() (int64, error) {
	id, err := s.ids.Next()
	if err != nil {
		return 0, fmt.Errorf("feed: new id: %w", err)
	}
	return int64(id), nil
}
