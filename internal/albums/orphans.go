package albums

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// Create writes the image first and the row after it. A crash between the
// two — or a failed insert whose clean-up delete failed too — leaves an
// image that no album points at: garbage, never an album whose image is
// missing. The collector removes that garbage: it lists the images, asks
// the database which of their albums exist, and deletes the images of
// albums that do not, once they are older than the grace period (an image
// younger than that may belong to a Create still on its way to the
// insert). An image's age is its album ID's: a Snowflake carries the time
// it was issued, before the image was written.

const imagePrefix = "albums/"

// CollectOrphans deletes the images older than OrphanGrace that no album
// row points at, and returns how many it deleted.
func (s *Service) CollectOrphans(ctx context.Context, now time.Time) (int, error) {
	cutoff := snowflake.FirstID(now.Add(-s.cfg.OrphanGrace), s.ids.Epoch())
	var candidates []int64
	removed := 0
	flush := func() error {
		if len(candidates) == 0 {
			return nil
		}
		exist, err := s.store.existing(ctx, candidates)
		if err != nil {
			return err
		}
		for _, id := range candidates {
			if exist[id] {
				continue
			}
			if err := s.blobs.Delete(ctx, imageKey(id)); err != nil {
				return err
			}
			removed++
			s.metrics.orphansRemoved.Inc()
		}
		candidates = candidates[:0]
		return nil
	}
	err := s.blobs.List(ctx, imagePrefix, func(key string) error {
		id, err := strconv.ParseInt(strings.TrimPrefix(key, imagePrefix), 10, 64)
		if err != nil || id <= 0 || id >= int64(cutoff) {
			return nil // not an album image, or too young to judge
		}
		candidates = append(candidates, id)
		if len(candidates) == 500 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if sw, ok := s.blobs.(tempSweeper); ok && err == nil {
		var temps int
		temps, err = sw.SweepTemp(now.Add(-s.cfg.OrphanGrace))
		if temps > 0 {
			s.logger.Info("albums: removed temporary files of uploads that never finished", "removed", temps)
		}
	}
	if removed > 0 {
		s.logger.Info("albums: removed images no album points at", "removed", removed)
	}
	if err != nil {
		return removed, fmt.Errorf("albums: collecting orphan images: %w", err)
	}
	return removed, nil
}

// tempSweeper is a blob store that keeps temporary files of its own (the
// local directory): those of a Put cut short by a crash are garbage too.
type tempSweeper interface {
	SweepTemp(cutoff time.Time) (int, error)
}

func imageKey(id int64) string { return imagePrefix + strconv.FormatInt(id, 10) }

func (s *Service) collectLoop(ctx context.Context) {
	defer close(s.collected)
	tick := time.NewTicker(s.cfg.CollectEvery)
	defer tick.Stop()
	for {
		if _, err := s.CollectOrphans(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.logger.Warn("albums: orphan collection failed (retried next round)", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
