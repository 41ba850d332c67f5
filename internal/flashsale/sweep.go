package flashsale

import (
	"context"
	"fmt"
	"time"
)

// sweep settles what nobody else will, and is safe to run anywhere and
// concurrently with everything else:
//
//  1. reserved orders older than the deadline (their worker died, their
//     message is stuck, the API crashed between reserve and pay): the
//     payment service decides — paid if it has the charge, otherwise the
//     key is voided (a late charge with it is refused) and the order
//     released;
//  2. in async mode, the gate's holds in flight older than the deadline
//     (Stale: the backlog's tail, not everything sold): a hold whose order
//     SQL released is given back, one whose order SQL paid is confirmed
//     (a crash between the two), and a hold with no order at all (the API died after the gate admitted
//     and before SQL recorded it; nobody was told 202) is tombstoned in
//     SQL as released and given back. The tombstone's primary key is
//     what stops a late insert of the same order from selling the unit
//     twice.
func (c *core) sweep(ctx context.Context) error {
	cut := c.now().Add(-c.deadline)
	stale, err := c.store.stale(ctx, c.mode, cut, 500)
	if err != nil {
		return err
	}
	for _, o := range stale {
		outcome, chargeID, err := c.pay.settleUnknown(ctx, o.ID)
		if err != nil {
			continue // the payment service is down: next round
		}
		settled, err := c.finish(ctx, o, outcome, chargeID, fmt.Sprintf("not paid within %v", c.deadline))
		if err != nil {
			return err
		}
		c.metrics.swept.WithLabelValues(settled.State).Inc()
	}
	if c.mode != ModeAsync {
		return nil
	}
	sales, err := c.store.sales(ctx, ModeAsync, 50)
	if err != nil {
		return err
	}
	for _, s := range sales {
		if err := c.sweepGate(ctx, s, cut); err != nil {
			return err
		}
	}
	return nil
}

func (c *core) sweepGate(ctx context.Context, s *Sale, cut time.Time) error {
	held, err := c.gate.Stale(ctx, s.ID, cut, 500)
	if err != nil || len(held) == 0 {
		return err
	}
	ids := make([]int64, 0, len(held))
	for id := range held {
		ids = append(ids, id)
	}
	states, err := c.store.statesOf(ctx, ids)
	if err != nil {
		return err
	}
	for id, h := range held {
		switch st, ok := states[id]; {
		case ok && st == StateReleased:
			if released, err := c.gate.Release(ctx, s.ID, id); err == nil && released {
				c.metrics.swept.WithLabelValues("gate_released").Inc()
			}
		case ok && st == StatePaid:
			if confirmed, err := c.gate.Confirm(ctx, s.ID, id); err == nil && confirmed {
				c.metrics.swept.WithLabelValues("gate_confirmed").Inc()
			}
		case !ok:
			t := c.now()
			tomb := &Order{ID: id, SaleID: s.ID, UserID: h.UserID, State: StateReleased, Reason: "admitted but never recorded (its API process stopped)",
				CreatedAt: h.At, SettledAt: &t, key: fmt.Sprintf("abandoned-%d", id)}
			won, err := c.store.tombstone(ctx, tomb)
			if err != nil {
				return err
			}
			if won {
				if _, err := c.gate.Release(ctx, s.ID, id); err != nil {
					return err
				}
				c.metrics.swept.WithLabelValues("abandoned").Inc()
			}
		}
	}
	return nil
}

func (c *core) runSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.sweep(ctx); err != nil && ctx.Err() == nil {
				c.logger.Warn("flashsale: sweep", "err", err)
			}
		}
	}
}

// Reconciliation is a sale's books at one moment.
type Reconciliation struct {
	SaleID    int64 `json:"sale_id,string"`
	Stock     int   `json:"stock"`
	Sold      int   `json:"sold"`       // orders paid
	Reserved  int   `json:"reserved"`   // orders holding a unit, unpaid yet
	Left      int   `json:"left"`       // units nobody holds
	Released  int   `json:"released"`   // orders released (their units back)
	Charges   int   `json:"charges"`    // the payment service's charges for the sale's orders
	OverLimit int   `json:"over_limit"` // users holding more than the limit
	// In async mode: orders the gate holds that SQL does not show as
	// holding (a repair pending), and the reverse.
	GateOnly int      `json:"gate_only,omitempty"`
	SQLOnly  int      `json:"sql_only,omitempty"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// reconcile checks a sale's invariants: sold + reserved + left = stock;
// orders paid = charges, and no released order charged; no user over the
// limit; in async mode, the gate and SQL agree on who holds a unit.
func (c *core) reconcile(ctx context.Context, saleID int64) (*Reconciliation, error) {
	s, err := c.store.sale(ctx, saleID) // not the cache: the sync hot row
	if err != nil {
		return nil, err
	}
	counts, err := c.store.counts(ctx, saleID)
	if err != nil {
		return nil, err
	}
	r := &Reconciliation{SaleID: saleID, Stock: s.Stock, Sold: counts.Paid, Reserved: counts.Reserved, Released: counts.Released}
	if r.OverLimit, err = c.store.overLimit(ctx, saleID, s.PerUserLimit); err != nil {
		return nil, err
	}
	states, err := c.store.states(ctx, saleID)
	if err != nil {
		return nil, err
	}
	charged, chargeErr := c.chargesByState(ctx, states)
	for _, n := range charged {
		r.Charges += n
	}
	if c.mode == ModeAsync {
		var sold int
		if r.Left, sold, err = c.gate.Units(ctx, saleID); err != nil {
			return nil, err
		}
		held, err := c.gate.Held(ctx, saleID)
		if err != nil {
			return nil, err
		}
		confirming := 0 // paid in SQL, in flight in the gate: Confirm pending
		for id := range held {
			switch st, ok := states[id]; {
			case !ok || st == StateReleased:
				r.GateOnly++
			case st == StatePaid:
				confirming++
			}
		}
		for id, st := range states {
			if _, ok := held[id]; !ok && st == StateReserved {
				r.SQLOnly++
			}
		}
		if sold+confirming != r.Sold {
			r.Problems = append(r.Problems, fmt.Sprintf("the gate counts %d units sold (and %d to confirm), SQL %d orders paid", sold, confirming, r.Sold))
		}
	} else {
		r.Left = s.stockLeft
	}
	if r.Sold+r.Reserved+r.Left+r.GateOnly-r.SQLOnly != r.Stock {
		r.Problems = append(r.Problems, fmt.Sprintf("sold %d + reserved %d + left %d ≠ stock %d", r.Sold, r.Reserved, r.Left, r.Stock))
	}
	if r.Sold+r.Reserved > r.Stock {
		r.Problems = append(r.Problems, fmt.Sprintf("oversold: %d orders hold units of %d", r.Sold+r.Reserved, r.Stock))
	}
	// A reserved order may hold a charge not yet marked (its worker is
	// between the two): not a problem while it lasts.
	if chargeErr != nil {
		r.Charges = -1
		r.Problems = append(r.Problems, fmt.Sprintf("charges not checked: %v", chargeErr))
	} else {
		if charged[StatePaid] != r.Sold {
			r.Problems = append(r.Problems, fmt.Sprintf("%d orders paid but %d of them charged", r.Sold, charged[StatePaid]))
		}
		if charged[StateReleased] > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%d released orders were charged", charged[StateReleased]))
		}
	}
	if r.OverLimit > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d users over the per-user limit", r.OverLimit))
	}
	r.OK = len(r.Problems) == 0
	return r, nil
}

// chargesByState asks the payment service which orders charged (in bulk)
// and counts the charges by the order's state.
func (c *core) chargesByState(ctx context.Context, states map[int64]string) (map[string]int, error) {
	ids := make([]int64, 0, len(states))
	for id := range states {
		ids = append(ids, id)
	}
	charged, err := c.pay.chargedAmong(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("flashsale: reconcile: %w", err)
	}
	out := map[string]int{}
	for id := range charged {
		out[states[id]]++
	}
	return out, nil
}
