package albums

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/apperr"
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
	MaxImage  int64         // bytes
	CacheTTL  time.Duration // album reads stay cached this long (writes invalidate)
	DBTimeout time.Duration // deadline of each database call on a request path
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
		MaxImage: 5 << 20, CacheTTL: 10 * time.Minute, DBTimeout: 2 * time.Second,
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

// Create stores the image, then the metadata. An image whose metadata
// insert fails is deleted again; if that delete fails too, an orphan blob
// remains under an ID no album will ever use (harmless, and logged).
func (s *Service) Create(ctx context.Context, p Profile, image []byte, imageType string) (*Album, error) {
	id, err := s.ids.Next()
	if err != nil {
		return nil, apperr.Retry(apperr.Unavailable, time.Second, "cannot issue album IDs right now")
	}
	a := &Album{ID: int64(id), Artist: p.Artist, Title: p.Title, Year: p.Year,
		ImageKey: imageKey(int64(id)), ImageSize: int64(len(image)), ImageType: imageType,
		CreatedAt: time.Now().UnixMilli()}
	if _, err := s.blobs.Put(ctx, a.ImageKey, bytes.NewReader(image), a.ImageSize, imageType); err != nil {
		s.logger.Warn("albums: blob store", "err", err)
		return nil, apperr.Retry(apperr.Unavailable, time.Second, "the image store is unavailable; the album was not created")
	}
	if err := s.db(ctx, func(ctx context.Context) error { return s.store.create(ctx, a) }); err != nil {
		if derr := s.blobs.Delete(context.WithoutCancel(ctx), a.ImageKey); derr != nil {
			s.logger.Warn("albums: orphan image left after a failed insert", "key", a.ImageKey, "err", derr)
		}
		return nil, err
	}
	return a, nil
}

func cacheKey(id int64) string   { return "albums:album:" + strconv.FormatInt(id, 10) }
func reviewsKey(id int64) string { return "albums:reviews:" + strconv.FormatInt(id, 10) }

// Get is cache-aside: the cache first, then the database, whose answer is
// cached. While the database is down, cached albums are still served.
func (s *Service) Get(ctx context.Context, id int64) (*Album, error) {
	if data, ok, err := s.cache.Get(ctx, cacheKey(id)); err == nil && ok {
		var a Album
		if json.Unmarshal(data, &a) == nil {
			s.metrics.reads.WithLabelValues("cache").Inc()
			return &a, nil
		}
	}
	var a *Album
	err := s.db(ctx, func(ctx context.Context) (err error) {
		a, err = s.store.get(ctx, id)
		return err
	})
	switch {
	case errors.Is(err, errNotFound):
		s.metrics.reads.WithLabelValues("db_miss").Inc()
		return nil, apperr.E(apperr.NotFound, "album %d not found", id)
	case err != nil:
		s.metrics.reads.WithLabelValues("error").Inc()
		return nil, dbUnavailable(err)
	}
	s.metrics.reads.WithLabelValues("db").Inc()
	if data, err := json.Marshal(a); err == nil {
		_ = s.cache.Set(ctx, cacheKey(id), data, s.cfg.CacheTTL)
	}
	return a, nil
}

// dbUnavailable keeps the protection's 503/504 and turns a raw database
// error into a 503 (the detail is logged, not shown).
func dbUnavailable(err error) error {
	if c := apperr.CodeOf(err); c != apperr.Internal {
		return err
	}
	slog.Warn("albums: database call failed", "err", err)
	return apperr.Retry(apperr.Unavailable, time.Second, "the album database is unavailable; try again")
}

// List lists albums newest first.
func (s *Service) List(ctx context.Context, f ListFilter) ([]*Album, error) {
	var out []*Album
	err := s.db(ctx, func(ctx context.Context) (err error) {
		out, err = s.store.list(ctx, f)
		return err
	})
	if err != nil {
		return nil, dbUnavailable(err)
	}
	return out, nil
}

// reviewMessage is a review on the broker.
type reviewMessage struct {
	ID      int64 `json:"id,string"`
	AlbumID int64 `json:"albumId,string"`
	Like    bool  `json:"like"`
}

// Review publishes a like or dislike. It is accepted (202) once the broker
// has it durably; the count changes when the consumer applies it. The
// review's ID makes the publish safe to retry and the apply idempotent.
func (s *Service) Review(ctx context.Context, albumID int64, like bool) (int64, error) {
	if _, err := s.Get(ctx, albumID); err != nil {
		return 0, err
	}
	id, err := s.ids.Next()
	if err != nil {
		return 0, apperr.Retry(apperr.Unavailable, time.Second, "cannot issue review IDs right now")
	}
	data, _ := json.Marshal(reviewMessage{ID: int64(id), AlbumID: albumID, Like: like})
	err = s.publish.Do(ctx, true, func(ctx context.Context) error {
		return s.broker.Publish(ctx, ReviewTopic, data)
	})
	if err != nil {
		s.metrics.reviews.WithLabelValues("refused").Inc()
		if apperr.CodeOf(err) == apperr.Internal {
			s.logger.Warn("albums: publishing a review failed", "err", err)
			return 0, apperr.Retry(apperr.Unavailable, time.Second, "the review queue is unavailable; the review was not recorded")
		}
		return 0, err
	}
	s.metrics.reviews.WithLabelValues("accepted").Inc()
	return int64(id), nil
}

// Counts are an album's applied reviews.
type Counts struct {
	Likes    int64 `json:"likes"`
	Dislikes int64 `json:"dislikes"`
}

// Reviews returns an album's applied counts, cache-aside: the consumer
// deletes the cached counts of every album a batch changed, after commit.
func (s *Service) Reviews(ctx context.Context, albumID int64) (Counts, error) {
	var c Counts
	if data, ok, err := s.cache.Get(ctx, reviewsKey(albumID)); err == nil && ok && json.Unmarshal(data, &c) == nil {
		return c, nil
	}
	err := s.db(ctx, func(ctx context.Context) (err error) {
		c.Likes, c.Dislikes, err = s.store.reviews(ctx, albumID)
		return err
	})
	if errors.Is(err, errNotFound) {
		return c, apperr.E(apperr.NotFound, "album %d not found", albumID)
	}
	if err != nil {
		return c, dbUnavailable(err)
	}
	if data, err := json.Marshal(c); err == nil {
		_ = s.cache.Set(ctx, reviewsKey(albumID), data, s.cfg.CacheTTL)
	}
	return c, nil
}

// applyReviews is the consumer's batch write.
func (s *Service) applyReviews(ctx context.Context, batch []*broker.Message) error {
	reviews := make([]Review, 0, len(batch))
	for _, m := range batch {
		var r reviewMessage
		if err := json.Unmarshal(m.Data, &r); err != nil || r.ID == 0 || r.AlbumID == 0 {
			s.metrics.reviewsApplied.WithLabelValues("malformed").Inc()
			s.logger.Error("albums: dropping a malformed review message", "data", string(m.Data))
			continue
		}
		reviews = append(reviews, Review{ID: r.ID, AlbumID: r.AlbumID, Like: r.Like})
	}
	n, err := s.store.applyReviews(ctx, reviews)
	if err != nil {
		return err
	}
	changed := map[int64]bool{}
	for _, r := range reviews {
		if !changed[r.AlbumID] {
			changed[r.AlbumID] = true
			if err := s.cache.Delete(ctx, reviewsKey(r.AlbumID)); err != nil {
				s.logger.Warn("albums: cached review counts not invalidated (they expire with the cache TTL)", "album", r.AlbumID, "err", err)
			}
		}
	}
	s.metrics.reviewsApplied.WithLabelValues("applied").Add(float64(n))
	s.metrics.reviewsApplied.WithLabelValues("duplicate").Add(float64(len(reviews) - n))
	return nil
}

// pruneLoop forgets applied review IDs older than the dedupe window. A
// Snowflake ID carries its issue time, so "older than" is an ID range and
// the delete is a primary-key range scan. Every consumer process prunes;
// two deleting the same range at once do no harm.
func (s *Service) pruneLoop(ctx context.Context) {
	defer close(s.pruned)
	every := s.cfg.PruneEvery
	if every <= 0 {
		every = 10 * time.Minute
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := s.PruneAppliedReviews(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.logger.Warn("albums: pruning applied review IDs failed (retried next round)", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// PruneAppliedReviews forgets the IDs of reviews issued before
// now − DedupeWindow and returns how many it deleted. A review redelivered
// after that would be counted again: the window is the promise.
func (s *Service) PruneAppliedReviews(ctx context.Context, now time.Time) (int64, error) {
	before := snowflake.FirstID(now.Add(-s.cfg.DedupeWindow), s.ids.Epoch())
	n, err := s.store.pruneApplied(ctx, int64(before), 10_000)
	s.metrics.reviewIDsPruned.Add(float64(n))
	return n, err
}

type metrics struct {
	reads           *prometheus.CounterVec
	reviews         *prometheus.CounterVec
	reviewsApplied  *prometheus.CounterVec
	reviewErrors    prometheus.Counter
	reviewIDsPruned prometheus.Counter
	orphansRemoved  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_albums_reads_total",
			Help: "Album reads by source: cache, db, db_miss, error."}, []string{"source"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_albums_reviews_total",
			Help: "Reviews received: accepted (on the broker) or refused (503)."}, []string{"outcome"}),
		reviewsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_albums_reviews_applied_total",
			Help: "Reviews taken off the broker: applied, duplicate (already counted), malformed."}, []string{"outcome"}),
		reviewErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_albums_review_batch_errors_total",
			Help: "Failed review batch writes (each retried)."}),
		reviewIDsPruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_albums_review_ids_pruned_total",
			Help: "Applied review IDs forgotten after the dedupe window."}),
		orphansRemoved: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_albums_orphan_images_removed_total",
			Help: "Images no album pointed at (a crash between image and row), deleted by the collector."}),
	}
	reg.MustRegister(m.reads, m.reviews, m.reviewsApplied, m.reviewErrors, m.reviewIDsPruned, m.orphansRemoved)
	return m
}
