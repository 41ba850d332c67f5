package shop

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/downstream"
)

// Checkout turns a cart into a paid order, once per idempotency key.
//
// It is a small saga with its state in the orders table. Step one, in one
// database transaction, takes the stock and writes a pending order under
// the client's key (a unique column). Steps two and three call the
// inventory service (reserve, keyed by order) and the payment service
// (charge, keyed by order); step four marks the order paid. Every step is
// idempotent, so a repeated request with the same key — after a timeout, a
// 503, a lost response — finds the order and resumes it where it stopped,
// and the payment service's key makes a repeated charge return the first
// one. created reports whether this call placed the order.
func (s *Service) Checkout(ctx context.Context, cartID int64, key string) (*Order, bool, error) {
	var o *Order
	err := s.db(ctx, func(ctx context.Context) (err error) { o, err = s.store.orderByKey(ctx, key); return err })
	switch {
	case err == nil:
		if o.CartID < 0 {
			return nil, false, apperr.E(apperr.Conflict, "Idempotency-Key %q was used for a purchase without a cart (order %d); use a new key for this cart", key, o.ID)
		}
		if o.CartID != cartID {
			return nil, false, apperr.E(apperr.Conflict, "Idempotency-Key %q was used to check out cart %d; use a new key for this cart", key, o.CartID)
		}
		return s.settle(ctx, o, false)
	case !errors.Is(err, errNotFound):
		return nil, false, err
	}

	id, err := s.nextID()
	if err != nil {
		return nil, false, err
	}
	now := s.cfg.Now().UnixMilli()
	o = &Order{ID: id, Key: key, CartID: cartID, State: orderPending, CreatedAt: now, UpdatedAt: now}
	err = s.db(ctx, func(ctx context.Context) error { return s.store.placeOrder(ctx, o) })
	var oos *outOfStockError
	var ordered *cartOrderedError
	switch {
	case err == nil:
		s.metrics.placed.Inc()
		return s.settle(ctx, o, true)
	case errors.Is(err, errKeyTaken): // a concurrent request with the same key won
		return s.Checkout(ctx, cartID, key)
	case errors.Is(err, errNotFound):
		return nil, false, apperr.E(apperr.NotFound, "no cart %d", cartID)
	case errors.Is(err, errEmptyCart):
		return nil, false, apperr.E(apperr.Conflict, "cart %d is empty", cartID)
	case errors.As(err, &ordered):
		return nil, false, apperr.E(apperr.Conflict, "cart %d was checked out already, as order %d (with another Idempotency-Key)", cartID, ordered.OrderID)
	case errors.As(err, &oos):
		s.metrics.checkouts.WithLabelValues("out_of_stock").Inc()
		return nil, false, apperr.E(apperr.Conflict, "out of stock: product %d: %d wanted, %d available", oos.ProductID, oos.Wanted, oos.Available)
	}
	return nil, false, err
}

// settle drives an order from wherever it stands to paid, or reports why
// it cannot now. A pending order that cannot be finished stays pending,
// with its stock held: the client retries with the same key, or the
// reconciler settles it.
func (s *Service) settle(ctx context.Context, o *Order, created bool) (*Order, bool, error) {
	switch o.State {
	case orderPaid:
		return o, created, nil
	case orderFailed:
		return o, created, apperr.E(apperr.Conflict, "order %d failed: %s", o.ID, o.Reason)
	}
	orderID := idString(o.ID)
	items := make([]downstream.LineItem, len(o.Items))
	for i, it := range o.Items {
		items[i] = downstream.LineItem{ProductID: idString(it.ProductID), Quantity: it.Quantity}
	}
	if err := s.down.Reserve(ctx, orderID, items); err != nil {
		return o, created, s.pending(o, "inventory", err)
	}
	chargeID, err := s.down.Charge(ctx, paymentKey(o.ID), orderID, o.TotalCents)
	if errors.Is(err, errVoided) {
		return s.reread(ctx, o, created)
	}
	if err != nil {
		return o, created, s.pending(o, "payment", err)
	}
	var paid bool
	if err := s.db(ctx, func(ctx context.Context) error {
		paid, err = s.store.markPaid(ctx, o.ID, chargeID, s.cfg.Now().UnixMilli())
		return err
	}); err != nil {
		return o, created, s.pending(o, "database", err)
	}
	if !paid {
		return s.reread(ctx, o, created)
	}
	o.State, o.ChargeID = orderPaid, chargeID
	s.metrics.checkouts.WithLabelValues("paid").Inc()
	return o, created, nil
}

// reread returns an order as the database has it now, after another actor
// (the reconciler, a concurrent retry) moved it on.
func (s *Service) reread(ctx context.Context, o *Order, created bool) (*Order, bool, error) {
	var now *Order
	err := s.db(ctx, func(ctx context.Context) (err error) { now, err = s.store.order(ctx, o.ID); return err })
	if err != nil {
		return o, created, err
	}
	if now.State == orderPending { // voided but not yet failed: the reconciler is on it
		return now, created, apperr.E(apperr.Conflict, "order %d is being cancelled: its payment was not confirmed in time", o.ID)
	}
	return s.settle(ctx, now, created)
}

// pending describes a checkout left pending by a failing step: the
// dependency's own status (503 with Retry-After, 504) and what to do.
func (s *Service) pending(o *Order, step string, err error) error {
	code := apperr.CodeOf(err)
	label := "pending_" + string(code)
	s.metrics.checkouts.WithLabelValues(label).Inc()
	if code != apperr.Unavailable && code != apperr.Timeout {
		return fmt.Errorf("shop: checkout %d at %s: %w", o.ID, step, err)
	}
	return &apperr.Error{Code: code, RetryAfter: apperr.RetryAfterOf(err),
		Message: fmt.Sprintf("%s; order %d is pending — retry with the same Idempotency-Key", apperr.MessageOf(err), o.ID)}
}

// paymentKey is the idempotency key the shop sends the payment service:
// one per order, whatever the client's key.
func paymentKey(orderID int64) string { return "order-" + idString(orderID) }

// reconcileLoop settles stale pending orders every ReconcileEvery.
func (s *Service) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("shop: reconcile", "settled", n, "err", err)
		}
	}
}

// Reconcile settles the pending orders older than PendingTimeout: an order
// whose payment charged is marked paid; otherwise its payment key is voided
// first — so that a charge still in flight can no longer succeed — and
// only then is the order failed and its stock returned. An order whose
// payment service cannot be asked stays pending for the next round. Any
// number of shop instances may reconcile at once: every step is guarded.
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	var stale []*Order
	before := s.cfg.Now().Add(-s.cfg.PendingTimeout).UnixMilli()
	if err := s.db(ctx, func(ctx context.Context) (err error) { stale, err = s.store.stalePending(ctx, before, 100); return err }); err != nil {
		return 0, err
	}
	settled := 0
	var errs []error
	for _, o := range stale {
		if ctx.Err() != nil {
			break
		}
		outcome, err := s.reconcileOne(ctx, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("order %d: %w", o.ID, err))
			continue
		}
		s.metrics.reconciled.WithLabelValues(outcome).Inc()
		settled++
	}
	return settled, errors.Join(errs...)
}

func (s *Service) reconcileOne(ctx context.Context, o *Order) (string, error) {
	key := paymentKey(o.ID)
	chargeID, charged, err := s.down.PaymentStatus(ctx, key)
	if err != nil {
		return "", err
	}
	if !charged {
		err := s.down.Void(ctx, key)
		switch {
		case errors.Is(err, errAlreadyCharged): // the charge landed between the two calls
			if chargeID, charged, err = s.down.PaymentStatus(ctx, key); err != nil || !charged {
				return "", fmt.Errorf("payment neither charged nor voidable: %v", err)
			}
		case err != nil:
			return "", err
		}
	}
	now := s.cfg.Now().UnixMilli()
	if charged {
		err := s.db(ctx, func(ctx context.Context) error { _, err := s.store.markPaid(ctx, o.ID, chargeID, now); return err })
		return "paid", err
	}
	reason := fmt.Sprintf("payment not confirmed within %s; cancelled and stock returned", s.cfg.PendingTimeout)
	var failed bool
	if err := s.db(ctx, func(ctx context.Context) (err error) {
		failed, err = s.store.failOrder(ctx, o, reason, now)
		return err
	}); err != nil {
		return "", err
	}
	if failed {
		if err := s.down.Release(ctx, idString(o.ID)); err != nil {
			// The warehouse keeps a hold it will never ship; the stock that
			// matters for selling is ours and has been returned.
			s.logger.Warn("shop: release reservation", "order", o.ID, "err", err)
		}
	}
	return "failed", nil
}

// Buy is a purchase in one request: the lines are priced and placed in
// one database transaction, then reserved, charged and marked paid as
// Checkout does — two write transactions in all, against five for a cart
// built line by line. The order has no cart. The idempotency key works as
// in Checkout (a key used for other lines is refused), but it is looked
// up only when the order's unique key says it was used: a new purchase,
// the common case, goes straight to its transaction.
func (s *Service) Buy(ctx context.Context, lines []CartItem, key string) (*Order, bool, error) {
	lines, err := mergeLines(lines)
	if err != nil {
		return nil, false, err
	}
	orderID, err := s.nextID()
	if err != nil {
		return nil, false, err
	}
	now := s.cfg.Now().UnixMilli()
	o := &Order{ID: orderID, Key: key, CartID: -orderID, State: orderPending, CreatedAt: now, UpdatedAt: now}
	err = s.db(ctx, func(ctx context.Context) error { return s.store.placeDirect(ctx, o, lines) })
	var oos *outOfStockError
	var missing *noProductError
	switch {
	case err == nil:
		s.metrics.placed.Inc()
		return s.settle(ctx, o, true)
	case errors.Is(err, errKeyTaken): // a repeat, or a concurrent request with the same key
		var first *Order
		if err := s.db(ctx, func(ctx context.Context) (err error) { first, err = s.store.orderByKey(ctx, key); return err }); err != nil {
			return nil, false, err
		}
		if first.CartID >= 0 || !sameLines(first.Items, lines) {
			return nil, false, apperr.E(apperr.Conflict, "Idempotency-Key %q was used for another purchase (order %d); use a new key", key, first.ID)
		}
		return s.settle(ctx, first, false)
	case errors.As(err, &missing):
		return nil, false, apperr.E(apperr.NotFound, "no product %d", missing.ProductID)
	case errors.As(err, &oos):
		s.metrics.checkouts.WithLabelValues("out_of_stock").Inc()
		return nil, false, apperr.E(apperr.Conflict, "out of stock: product %d: %d wanted, %d available", oos.ProductID, oos.Wanted, oos.Available)
	}
	return nil, false, err
}

// mergeLines checks a purchase's lines against the cart's limits and adds
// up lines of the same product, in product order.
func mergeLines(lines []CartItem) ([]CartItem, error) {
	if len(lines) == 0 {
		return nil, apperr.E(apperr.Invalid, "items: at least one line")
	}
	byProduct := map[int64]int{}
	units := 0
	for _, l := range lines {
		if l.ProductID < 1 {
			return nil, apperr.E(apperr.Invalid, "items: productId must be a positive ID")
		}
		if l.Quantity < 1 || l.Quantity > maxLineUnits {
			return nil, apperr.E(apperr.Invalid, "items: quantity: an integer from 1 to %d", maxLineUnits)
		}
		byProduct[l.ProductID] += l.Quantity
		units += l.Quantity
	}
	if len(byProduct) > maxCartLines || units > maxCartUnits {
		return nil, apperr.E(apperr.Invalid, "items: at most %d lines and %d units", maxCartLines, maxCartUnits)
	}
	out := make([]CartItem, 0, len(byProduct))
	for id, q := range byProduct {
		out = append(out, CartItem{ProductID: id, Quantity: q})
	}
	slices.SortFunc(out, func(a, b CartItem) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return out, nil
}

// sameLines says whether an order holds exactly these (merged, sorted)
// lines.
func sameLines(items []OrderItem, lines []CartItem) bool {
	if len(items) != len(lines) {
		return false
	}
	for i := range items {
		if items[i].ProductID != lines[i].ProductID || items[i].Quantity != lines[i].Quantity {
			return false
		}
	}
	return true
}
