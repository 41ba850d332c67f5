package albums

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

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
func (s *Service) reviewsTTL() time.Duration {
	if s.cfg.ReviewsTTL > 0 {
		return min(s.cfg.ReviewsTTL, s.cfg.CacheTTL)
	}
	return s.cfg.CacheTTL
}

func (s *Service) Reviews(ctx context.Context, albumID int64) (Counts, error) {
	var c Counts
	if data, ok, err := s.cache.Get(ctx, reviewsKey(albumID)); err == nil && ok && json.Unmarshal(data, &c) == nil {
		return c, nil
	}
	epoch := s.reviewEpoch.Load()
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
	if data, err := json.Marshal(c); err == nil && s.reviewEpoch.Load() == epoch {
		_ = s.cache.Set(ctx, reviewsKey(albumID), data, s.reviewsTTL())
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
	s.reviewEpoch.Add(1) // before the invalidation: a read racing it will not cache
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
