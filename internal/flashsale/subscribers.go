package flashsale

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// startSubscribers joins the notification and analytics groups of the
// orders topic: each gets its own copy of every order event, as SNS hands
// one message to every subscribed queue.
func (s *System) startSubscribers(ctx context.Context) error {
	// Notifications are written in batches (a statement per batch, not a
	// transaction per order), acked after their write.
	notify, err := broker.ConsumeBatches(ctx, s.broker, ordersTopic, "notification", broker.BatchConfig{Size: 256, Wait: 5 * time.Millisecond},
		func(ctx context.Context, batch []*broker.Message) error {
			ns := make([]notice, 0, len(batch))
			for _, m := range batch {
				var e orderEvent
				if json.Unmarshal(m.Data, &e) != nil || e.OrderID <= 0 {
					continue // never decodes: acked with the batch
				}
				ns = append(ns, notice{orderID: e.OrderID, kind: "received", at: s.now()})
			}
			if len(ns) == 0 {
				return nil
			}
			return s.store.notifyBatch(ctx, ns)
		}, nil, s.logger)
	if err != nil {
		return fmt.Errorf("flashsale: notification subscriber: %w", err)
	}
	analytics, err := s.broker.Consume(ctx, ordersTopic, "analytics", func(ctx context.Context, m *broker.Message) {
		var e orderEvent
		if json.Unmarshal(m.Data, &e) == nil && e.SaleID > 0 {
			s.analytics.add(e.SaleID, e.OrderID)
		}
		_ = m.Ack()
	})
	if err != nil {
		notify.Close()
		return fmt.Errorf("flashsale: analytics subscriber: %w", err)
	}
	s.run(func() { <-ctx.Done(); notify.Close(); analytics.Stop() })
	return nil
}

// analytics counts distinct order events per sale (redeliveries are not
// counted twice).
type analytics struct {
	mu   sync.Mutex
	seen map[int64]map[int64]bool
}

func (a *analytics) add(saleID, orderID int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen == nil {
		a.seen = map[int64]map[int64]bool{}
	}
	if a.seen[saleID] == nil {
		a.seen[saleID] = map[int64]bool{}
	}
	a.seen[saleID][orderID] = true
}

func (a *analytics) count(saleID int64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen[saleID])
}

// listeners are the SSE streams waiting for orders to settle.
type listeners struct {
	mu      sync.Mutex
	byOrder map[int64][]chan string
}

func newListeners() *listeners { return &listeners{byOrder: map[int64][]chan string{}} }

func (l *listeners) wait(orderID int64) (chan string, func()) {
	ch := make(chan string, 1)
	l.mu.Lock()
	l.byOrder[orderID] = append(l.byOrder[orderID], ch)
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		list := l.byOrder[orderID]
		for i, c := range list {
			if c == ch {
				l.byOrder[orderID] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(l.byOrder[orderID]) == 0 {
			delete(l.byOrder, orderID)
		}
	}
}

func (l *listeners) deliver(data []byte) {
	var e orderEvent
	if json.Unmarshal(data, &e) != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.byOrder[e.OrderID] {
		select {
		case ch <- e.State:
		default:
		}
	}
}
