package flashsale

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// Modes.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
)

// Topics: every admitted order is published once to ordersTopic, which the
// processing, notification and analytics groups each get a copy of (the
// fan-out SNS gives SQS queues); settledTopic tells the API processes'
// live listeners (SSE) that an order settled.
const (
	ordersTopic  = "flashsale-orders"
	settledTopic = "flashsale-settled"
)

// orderEvent is the message on both topics.
type orderEvent struct {
	OrderID int64  `json:"order_id,string"`
	SaleID  int64  `json:"sale_id,string"`
	State   string `json:"state,omitempty"`
}

// core is what the API, the workers and the function runtime share: the
// store, the gate, the payment client, and the order's life after
// admission (charge, settle, release).
type core struct {
	mode     string
	store    *store
	gate     Gate
	pay      *payments
	broker   broker.Broker
	now      func() time.Time
	logger   *slog.Logger
	metrics  *metrics
	deadline time.Duration // a reservation unpaid this long is the sweeper's
	// Async: the processors' reads and settlements in group commits.
	reads   *orderReads
	settles *settlements

	salesMu sync.Mutex
	sales   map[int64]*Sale // sales are immutable once made (but for the sync hot row, not cached)
}

func (c *core) sale(ctx context.Context, id int64) (*Sale, error) {
	c.salesMu.Lock()
	s, ok := c.sales[id]
	c.salesMu.Unlock()
	if ok {
		return s, nil
	}
	s, err := c.store.sale(ctx, id)
	if err != nil {
		return nil, err
	}
	c.salesMu.Lock()
	c.sales[id] = s
	c.salesMu.Unlock()
	return s, nil
}

// openGate opens a sale in the gate from the orders SQL holds.
func (c *core) openGate(ctx context.Context, s *Sale) error {
	holds, err := c.store.holds(ctx, s.ID)
	if err != nil {
		return err
	}
	return c.gate.Open(ctx, s.ID, s.Stock, s.PerUserLimit, holds)
}

// process takes one order's payment and settles it: paid, or released
// with its unit given back. It is idempotent by order: an order no longer
// reserved is left alone, and the charge carries the order's key. It
// returns an error only when the outcome is still unknown (the message
// should come again).
func (c *core) process(ctx context.Context, orderID int64) (*Order, error) {
	var o *Order
	var err error
	if c.reads != nil {
		o, err = c.reads.do(ctx, orderID)
	} else {
		o, err = c.store.order(ctx, orderID)
	}
	if err != nil {
		return nil, err
	}
	if o.State != StateReserved {
		return o, nil
	}
	s, err := c.sale(ctx, o.SaleID)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	outcome, chargeID := c.pay.charge(ctx, o.ID, s.PriceCents)
	c.metrics.payment.Observe(time.Since(start).Seconds())
	if outcome == uncertain {
		if outcome, chargeID, err = c.pay.settleUnknown(ctx, o.ID); err != nil {
			return o, fmt.Errorf("flashsale: order %d: the payment's outcome is unknown: %w", o.ID, err)
		}
	}
	return c.finish(ctx, o, outcome, chargeID, "the payment failed")
}

// finish records a known payment outcome.
func (c *core) finish(ctx context.Context, o *Order, outcome chargeOutcome, chargeID, why string) (*Order, error) {
	state, reason := StatePaid, ""
	if outcome != charged {
		state, reason = StateReleased, why
	}
	now, err := c.settle(ctx, settlement{id: o.ID, state: state, reason: reason, chargeID: chargeID, at: c.now()})
	if err != nil {
		return o, err
	}
	if c.mode == ModeAsync {
		// The sweeper repairs a gate that missed either step.
		if now.State == StateReleased {
			if _, err := c.gate.Release(ctx, o.SaleID, o.ID); err != nil {
				c.logger.Warn("flashsale: release in the gate failed", "order", o.ID, "err", err)
			}
		} else if now.State == StatePaid {
			if _, err := c.gate.Confirm(ctx, o.SaleID, o.ID); err != nil {
				c.logger.Warn("flashsale: confirm in the gate failed", "order", o.ID, "err", err)
			}
		}
	}
	c.metrics.settled.WithLabelValues(now.State).Inc()
	c.announce(ctx, now)
	return now, nil
}

// settle records an outcome and returns the order as it is after it
// (changed, or settled already by someone else).
func (c *core) settle(ctx context.Context, st settlement) (*Order, error) {
	if c.settles != nil {
		return c.settles.do(ctx, st)
	}
	if _, err := c.store.settle(ctx, st.id, st.state, st.reason, st.chargeID, st.at, c.mode == ModeSync); err != nil {
		return nil, err
	}
	return c.store.order(ctx, st.id)
}

// startGroups starts the async processors' group commits.
func (c *core) startGroups(ctx context.Context, run func(func())) {
	if c.mode != ModeAsync {
		return
	}
	c.reads, c.settles = newOrderReads(c.store), newSettlements(c.store)
	for i := 0; i < groupRunners; i++ {
		run(func() { c.reads.run(ctx) })
		run(func() { c.settles.run(ctx) })
	}
}

// announce tells live listeners an order settled (best effort: a listener
// that misses it reads the order).
func (c *core) announce(ctx context.Context, o *Order) {
	if c.broker == nil {
		return
	}
	raw, _ := json.Marshal(orderEvent{OrderID: o.ID, SaleID: o.SaleID, State: o.State})
	if p, err := c.broker.PublishAsync(ctx, settledTopic, raw); err == nil {
		go func() { _ = p.Wait(context.WithoutCancel(ctx)) }()
	}
}

// Service is the API side: sales and ordering.
type Service struct {
	*core
	ids          *snowflake.LeasedGenerator
	relay        chan struct{} // a nudge: the outbox has something
	refusals     *refusalLog
	recorder     *recorder     // async: group commits of admitted orders
	reservations *reservations // async: the gate's reservations, in groups
	analytics    analytics
}

// CreateSale makes a sale and opens it in the gate.
func (s *Service) CreateSale(ctx context.Context, req SaleRequest) (*Sale, error) {
	sl, err := req.check(s.now())
	if err != nil {
		return nil, err
	}
	next, err := s.ids.Next()
	id := int64(next)
	if err != nil {
		return nil, apperr.E(apperr.Unavailable, "no ID: %v", err)
	}
	sl.ID, sl.Mode = id, s.mode
	if err := s.store.createSale(ctx, sl); err != nil {
		return nil, err
	}
	if s.mode == ModeAsync {
		if err := s.gate.Open(ctx, sl.ID, sl.Stock, sl.PerUserLimit, nil); err != nil {
			return nil, err
		}
	}
	return sl, nil
}

// Placed is the outcome of an order request.
type Placed struct {
	Order  *Order
	Replay bool // an earlier request with the same key made it
}

// Place handles one order request: in sync mode to the end (paid, or an
// error), in async mode to a durable reservation.
func (s *Service) Place(ctx context.Context, saleID int64, userID, key string) (Placed, error) {
	if err := checkUser(userID); err != nil {
		return Placed{}, err
	}
	if key != "" {
		if err := checkKey(key); err != nil {
			return Placed{}, err
		}
	}
	sl, err := s.sale(ctx, saleID)
	if err != nil {
		return Placed{}, err
	}
	if sl.Mode != s.mode {
		return Placed{}, apperr.E(apperr.Conflict, "sale %d runs in %s mode; this process serves %s sales", sl.ID, sl.Mode, s.mode)
	}
	now := s.now()
	if now.Before(sl.StartsAt) {
		wait := sl.StartsAt.Sub(now)
		return Placed{}, apperr.Retry(apperr.TooEarly, wait.Round(time.Second)+time.Second, "the sale starts at %s, in %v", sl.StartsAt.Format(time.RFC3339Nano), wait.Round(time.Millisecond))
	}
	if key != "" {
		if o, err := s.store.orderByKey(ctx, saleID, key); err != nil || o != nil {
			return Placed{Order: o, Replay: true}, err
		}
		if err := s.refusals.get(saleID, key); err != nil {
			return Placed{}, err
		}
	}
	next, err := s.ids.Next()
	id := int64(next)
	if err != nil {
		return Placed{}, apperr.E(apperr.Unavailable, "no ID: %v", err)
	}
	o := &Order{ID: id, SaleID: saleID, UserID: userID, State: StateReserved, CreatedAt: now.Truncate(time.Millisecond), key: key}
	if key == "" {
		o.key = "order-" + strconv.FormatInt(id, 10)
	}
	if s.mode == ModeSync {
		return s.placeSync(ctx, sl, o)
	}
	return s.placeAsync(ctx, sl, o)
}

func (s *Service) refuse(sl *Sale, o *Order, adm Admission) error {
	s.metrics.refused.WithLabelValues(adm.String()).Inc()
	var err error
	switch adm {
	case SoldOut:
		err = apperr.E(apperr.Conflict, "sold out: all %d units of %s are taken", sl.Stock, sl.Item)
	case OverLimit:
		err = apperr.E(apperr.Conflict, "over the limit: %s holds %d of %s already", o.UserID, sl.PerUserLimit, sl.Item)
	default:
		err = apperr.E(apperr.Unavailable, "the sale is not open here")
	}
	if o.key != "order-"+strconv.FormatInt(o.ID, 10) {
		s.refusals.put(sl.ID, o.key, err)
	}
	return err
}

// replayOnConflict answers a request that lost a race to an earlier one
// with the same key.
func (s *Service) replayOnConflict(ctx context.Context, o *Order, err error) (Placed, error) {
	if !sqldb.IsUniqueViolation(err) {
		return Placed{}, err
	}
	first, ferr := s.store.orderByKey(ctx, o.SaleID, o.key)
	if ferr != nil || first == nil {
		return Placed{}, apperr.E(apperr.Unavailable, "try again: a request with the same key is in progress")
	}
	return Placed{Order: first, Replay: true}, nil
}

func (s *Service) placeSync(ctx context.Context, sl *Sale, o *Order) (Placed, error) {
	adm, err := s.store.reserveSync(ctx, o, sl.PerUserLimit)
	if err != nil {
		if p, rerr := s.replayOnConflict(ctx, o, err); rerr == nil {
			return p, nil
		}
		return Placed{}, apperr.E(apperr.Unavailable, "the database did not take the order: %v", err)
	}
	if adm != Admitted {
		return Placed{}, s.refuse(sl, o, adm)
	}
	s.metrics.admitted.Inc()
	settled, err := s.process(ctx, o.ID)
	if err != nil {
		return Placed{Order: o}, apperr.E(apperr.Timeout, "order %d is reserved and its payment's outcome unknown; it will be settled within %v (GET /api/v1/orders/%d)", o.ID, 2*s.deadline, o.ID)
	}
	return Placed{Order: settled}, nil
}

func (s *Service) placeAsync(ctx context.Context, sl *Sale, o *Order) (Placed, error) {
	r := saleReservation{saleID: sl.ID, Reservation: Reservation{UserID: o.UserID, OrderID: o.ID, At: o.CreatedAt}}
	adm, err := s.reservations.do(ctx, r)
	if err == nil && adm == NotOpen { // a gate that lost the sale (a restart): open it from SQL
		if err = s.openGate(ctx, sl); err == nil {
			adm, err = s.reservations.do(ctx, r)
		}
	}
	if err != nil {
		return Placed{}, apperr.E(apperr.Unavailable, "the admission gate did not answer: %v", err)
	}
	if adm != Admitted {
		return Placed{}, s.refuse(sl, o, adm)
	}
	if _, err := s.recorder.do(ctx, o); err != nil {
		if p, rerr := s.replayOnConflict(ctx, o, err); rerr == nil {
			// An earlier request with the same key won: this one's unit
			// goes back (its transaction certainly did not commit).
			if _, rerr := s.gate.Release(context.WithoutCancel(ctx), sl.ID, o.ID); rerr != nil {
				s.logger.Warn("flashsale: release after a lost race", "order", o.ID, "err", rerr)
			}
			return p, nil
		}
		// Any other failure may have committed after all (a commit cut
		// by a client that left): the hold stays, and the sweeper, past
		// the deadline, keeps it if the order exists or tombstones the
		// order and gives the unit back if it does not. Releasing here
		// could hand out a unit an order still holds.
		return Placed{}, apperr.E(apperr.Unavailable, "the order could not be recorded: %v", err)
	}
	s.metrics.admitted.Inc()
	select {
	case s.relay <- struct{}{}:
	default:
	}
	return Placed{Order: o}, nil
}

// refusalLog remembers refusals by idempotency key, so that a replay of a
// refused request gets the same answer even after units come back. It
// keeps the last refusalLogSize (a bounded FIFO: enough for a spike's
// retries, not an archive).
type refusalLog struct {
	mu    sync.Mutex
	byKey map[string]error
	order []string
	next  int
}

const refusalLogSize = 100_000

func newRefusalLog() *refusalLog {
	return &refusalLog{byKey: map[string]error{}, order: make([]string, refusalLogSize)}
}

func refusalKey(saleID int64, key string) string { return strconv.FormatInt(saleID, 10) + "/" + key }

func (l *refusalLog) put(saleID int64, key string, err error) {
	k := refusalKey(saleID, key)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byKey[k]; ok {
		return
	}
	if old := l.order[l.next]; old != "" {
		delete(l.byKey, old)
	}
	l.order[l.next] = k
	l.next = (l.next + 1) % len(l.order)
	l.byKey[k] = err
}

func (l *refusalLog) get(saleID int64, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byKey[refusalKey(saleID, key)]
}
