package albums

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/cache"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

const description = "Album store: metadata in SQL, covers in a blob store, likes counted through the broker"

// ReviewTopic carries likes and dislikes to the review consumer.
const ReviewTopic = "album-reviews"

// Config is the album store's configuration.
type Config struct {
	MaxImage int64         // bytes
	CacheTTL time.Duration // album reads stay cached this long (writes invalidate)
	// ResponseCacheBytes bounds the encoded GET answers kept in process.
	ResponseCacheBytes int64
	// ReviewsTTL bounds how long review counts stay cached: the consumer
	// invalidates them after each batch, but a read that began before the
	// batch and caches what it read afterwards would otherwise keep the
	// old counts for CacheTTL (another instance's consumer cannot stop it).
	ReviewsTTL time.Duration
	DBTimeout  time.Duration // deadline of each database call on a request path
	// Reviews are applied in batches by a consumer group member.
	ReviewBatch   int
	ReviewWait    time.Duration
	ConsumeReview bool // run the review consumer in this process
	// Applied review IDs are remembered this long so a redelivery is
	// recognised; older IDs are pruned every PruneEvery. It must exceed
	// the longest a broker can take to redeliver a review (0: never prune).
	DedupeWindow time.Duration
	PruneEvery   time.Duration
	// Images no album points at (a crash between the image and the row)
	// are collected every CollectEvery (0: never) once older than
	// OrphanGrace, which must exceed the longest a Create takes.
	CollectEvery time.Duration
	OrphanGrace  time.Duration
	Publish      resilience.Config
	Database     resilience.Config
	Worker       host.WorkerConfig
}

// DefaultConfig is what `up` runs with.
func DefaultConfig() Config {
	publish := resilience.DefaultConfig()
	publish.Timeout = time.Second
	publish.BreakerFailures, publish.BreakerWindow, publish.BreakerDelay = 5, 10, 5*time.Second
	publish.MaxConcurrent, publish.MaxWait = 256, 100*time.Millisecond
	db := resilience.DefaultConfig()
	db.Timeout = 2 * time.Second
	db.Retries = 0 // the driver's pool already retries bad connections
	db.BreakerDelay = 2 * time.Second
	db.MaxConcurrent, db.MaxWait = 128, 200*time.Millisecond
	return Config{
		MaxImage: 5 << 20, CacheTTL: 10 * time.Minute, ResponseCacheBytes: 32 << 20, ReviewsTTL: time.Second, DBTimeout: 2 * time.Second,
		ReviewBatch: 500, ReviewWait: 50 * time.Millisecond, ConsumeReview: true,
		DedupeWindow: 7 * 24 * time.Hour, PruneEvery: 10 * time.Minute,
		CollectEvery: 10 * time.Minute, OrphanGrace: 10 * time.Minute,
		Publish: publish, Database: db, Worker: host.DefaultWorkerConfig(),
	}
}

// Service is the album store.
type Service struct {
	cfg       Config
	baseURL   string
	store     *store
	cache     cache.Cache
	blobs     blob.Store
	broker    broker.Broker
	ids       *snowflake.LeasedGenerator
	publish   *resilience.Dependency // the broker, for reviews
	database  *resilience.Dependency
	consumer  *broker.BatchConsumer
	stopPrune context.CancelFunc
	pruned    chan struct{}
	stopGC    context.CancelFunc
	collected chan struct{}
	metrics   *metrics
	logger    *slog.Logger
	// responses holds the encoded answers of GET /albums/{id}. An album
	// never changes once created, so its answer is encoded once per
	// process and served as bytes: no cache lookup, decode or encode per
	// request (bounded; a miss costs one shared-cache or database read).
	responses *otter.Cache[int64, []byte]
	// reviewEpoch counts the review batches this process applied: a read
	// of the counts caches what it read only if no batch was applied while
	// it read (in this process; across processes ReviewsTTL bounds it).
	reviewEpoch atomic.Uint64
}

var (
	_ host.System      = (*Service)(nil)
	_ host.BodyLimiter = (*Service)(nil)
)

// Factory registers the album store with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{Name: "albums", Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) { return New(ctx, d, cfg) }}
}

// New builds the album store on the host's engines.
func New(ctx context.Context, d *host.Deps, cfg Config) (*Service, error) {
	st, err := openStore(ctx, d.DB)
	if err != nil {
		return nil, err
	}
	ids, err := d.NewGenerator(ctx, "albums", cfg.Worker, snowflake.Config{})
	if err != nil {
		return nil, fmt.Errorf("albums: %w", err)
	}
	deps := resilience.NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"system": "albums"}, d.Registry))
	s := &Service{
		cfg: cfg, baseURL: d.BaseURL, store: st, cache: d.Cache, blobs: d.Blob, broker: d.Broker, ids: ids,
		publish:  resilience.New("broker", cfg.Publish, deps),
		database: resilience.New("database", cfg.Database, deps),
		metrics:  newMetrics(d.Registry),
		logger:   d.Logger,
		responses: otter.Must(&otter.Options[int64, []byte]{
			MaximumWeight: uint64(cfg.ResponseCacheBytes),
			Weigher:       func(_ int64, body []byte) uint32 { return uint32(len(body)) + 64 },
		}),
	}
	if cfg.CollectEvery > 0 {
		var gcCtx context.Context
		gcCtx, s.stopGC = context.WithCancel(context.WithoutCancel(ctx))
		s.collected = make(chan struct{})
		go s.collectLoop(gcCtx)
	}
	if cfg.ConsumeReview {
		s.consumer, err = broker.ConsumeBatches(ctx, d.Broker, ReviewTopic, "albums-reviews",
			broker.BatchConfig{Size: cfg.ReviewBatch, Wait: cfg.ReviewWait}, s.applyReviews,
			func(error) { s.metrics.reviewErrors.Inc() }, d.Logger)
		if err != nil {
			ids.Close(context.Background())
			return nil, fmt.Errorf("albums: review consumer: %w", err)
		}
		if cfg.DedupeWindow > 0 {
			var pruneCtx context.Context
			pruneCtx, s.stopPrune = context.WithCancel(context.WithoutCancel(ctx))
			s.pruned = make(chan struct{})
			go s.pruneLoop(pruneCtx)
		}
	}
	return s, nil
}

// Name implements host.System.
func (s *Service) Name() string { return "albums" }

// Description implements host.System.
func (s *Service) Description() string { return description }

// MaxBody implements host.BodyLimiter: an upload is an image and a profile.
func (s *Service) MaxBody() int64 { return s.cfg.MaxImage + maxProfile + 64<<10 }

// Checks implements host.System.
func (s *Service) Checks() []httpx.Check {
	return []httpx.Check{{Name: "worker-id", Fn: s.ids.Ready}}
}

// Close implements host.System: apply the reviews in hand, release the worker ID.
func (s *Service) Close(ctx context.Context) error {
	if s.consumer != nil {
		s.consumer.Close()
	}
	if s.stopPrune != nil {
		s.stopPrune()
		<-s.pruned
	}
	if s.stopGC != nil {
		s.stopGC()
		<-s.collected
	}
	return s.ids.Close(ctx)
}

// db runs a database call under its deadline and protection.
func (s *Service) db(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.database.Do(ctx, false, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.DBTimeout)
		defer cancel()
		err := fn(ctx)
		if errors.Is(err, errNotFound) {
			return resilience.Permanent(err) // an answer, not a failing database
		}
		return err
	})
}
