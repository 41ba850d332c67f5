package albums

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

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
