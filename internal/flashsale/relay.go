package flashsale

import (
	"context"
	"encoding/json"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// runRelay moves the outbox to the broker until ctx ends: on a nudge
// from an admission, or every poll interval (events a crashed process
// left, or a nudge that was dropped). An event is marked published only
// after the broker has acked it, so a crash in between publishes it again:
// at least once, and every subscriber is idempotent by order.
func (s *Service) runRelay(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.relay:
		case <-t.C:
		}
		for ctx.Err() == nil {
			n, err := s.relayOnce(ctx)
			if err != nil {
				s.logger.Warn("flashsale: relay", "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
	}
}

func (s *Service) relayOnce(ctx context.Context) (int, error) {
	batch, err := s.store.unpublished(ctx, 500)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	pending := make([]broker.Pending, 0, len(batch))
	for _, e := range batch {
		raw, _ := json.Marshal(orderEvent{OrderID: e[0], SaleID: e[1]})
		p, err := s.broker.PublishAsync(ctx, ordersTopic, raw)
		if err != nil {
			return 0, err
		}
		pending = append(pending, p)
	}
	done := make([]int64, 0, len(batch))
	for i, p := range pending {
		if err := p.Wait(ctx); err != nil {
			_ = s.store.markPublished(ctx, done)
			return 0, err
		}
		done = append(done, batch[i][0])
	}
	if err := s.store.markPublished(ctx, done); err != nil {
		return 0, err
	}
	s.metrics.published.Add(float64(len(done)))
	return len(done), nil
}
