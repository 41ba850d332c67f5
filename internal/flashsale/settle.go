package flashsale

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// The async processors read and settle orders in group commits
// (groupCommit): every worker's read of its order joins one SELECT, and
// every settlement one transaction, so that the database's round trips and
// commits are paid per group, not per order. The sync mode settles inside
// the request, on the sale's hot row, one order at a time.

// settlement is one order's known payment outcome.
type settlement struct {
	id                      int64
	state, reason, chargeID string
	at                      time.Time
}

type (
	orderReads  = groupCommit[int64, *Order]
	settlements = groupCommit[settlement, *Order]
)

const maxSettleBatch = 256

func newOrderReads(st *store) *orderReads {
	return newGroupCommit("order's read", maxSettleBatch, func(ctx context.Context, ids []int64) []groupResult[*Order] {
		found, err := st.ordersByID(ctx, ids)
		if err != nil {
			return allFailed[*Order](len(ids), err)
		}
		return resultsByID(ids, found)
	})
}

func newSettlements(st *store) *settlements {
	return newGroupCommit("settlement's commit", maxSettleBatch, func(ctx context.Context, ss []settlement) []groupResult[*Order] {
		found, err := st.settleBatch(ctx, ss)
		if err != nil {
			return allFailed[*Order](len(ss), err)
		}
		ids := make([]int64, len(ss))
		for i, s := range ss {
			ids[i] = s.id
		}
		return resultsByID(ids, found)
	})
}

func resultsByID(ids []int64, found map[int64]*Order) []groupResult[*Order] {
	out := make([]groupResult[*Order], len(ids))
	for i, id := range ids {
		if o, ok := found[id]; ok {
			c := *o // each caller its own copy
			out[i].out = &c
		} else {
			out[i].err = apperr.E(apperr.NotFound, "no order %d", id)
		}
	}
	return out
}

// ordersByID reads the orders given that exist.
func (s *store) ordersByID(ctx context.Context, ids []int64) (map[int64]*Order, error) {
	return s.readOrders(ctx, s.db, ids)
}

func (s *store) readOrders(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, ids []int64) (map[int64]*Order, error) {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := q.QueryContext(ctx, s.q("SELECT "+orderColumns+" FROM flashsale_orders WHERE order_id IN ("+placeholders(len(ids))+")"), args...)
	if err != nil {
		return nil, fmt.Errorf("flashsale: read orders: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]*Order, len(ids))
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("flashsale: read orders: %w", err)
		}
		out[o.ID] = o
	}
	return out, rows.Err()
}

// settleBatch records outcomes in one transaction — one UPDATE for the
// whole batch, changing only orders still reserved (so a repeated or late
// settlement changes nothing) — and returns the orders as they are after
// it. One statement locks its rows in one index scan, in key order, so two
// batches that share orders wait for each other instead of deadlocking (as
// an UPDATE per outcome did on MariaDB: paid rows, then released ones, in
// an order another batch could take the other way round). Async mode
// only: it gives no unit back to the sale's row.
func (s *store) settleBatch(ctx context.Context, ss []settlement) (map[int64]*Order, error) {
	var found map[int64]*Order
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var state, reason, charge, at strings.Builder
		var sa, ra, ca, aa, ids []any
		// Paid outcomes first: an order paid and released in one batch is
		// paid (CASE takes the first match), as when each had its UPDATE.
		for _, want := range []string{StatePaid, StateReleased} {
			for _, st := range ss {
				if st.state != want {
					continue
				}
				for _, b := range []*strings.Builder{&state, &reason, &charge, &at} {
					b.WriteString(" WHEN ? THEN ?")
				}
				sa = append(sa, st.id, st.state)
				ra = append(ra, st.id, st.reason)
				ca = append(ca, st.id, st.chargeID)
				aa = append(aa, st.id, st.at.UnixMilli())
				ids = append(ids, st.id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		q := "UPDATE flashsale_orders SET state = CASE order_id" + state.String() + " ELSE state END, reason = CASE order_id" + reason.String() +
			" ELSE reason END, charge_id = CASE order_id" + charge.String() + " ELSE charge_id END, settled_at = CASE order_id" + at.String() +
			" ELSE settled_at END WHERE state = 'reserved' AND order_id IN (" + placeholders(len(ids)) + ")"
		args := append(append(append(append(sa, ra...), ca...), aa...), ids...)
		if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
			return err
		}
		orderIDs := make([]int64, len(ss))
		for i, st := range ss {
			orderIDs[i] = st.id
		}
		var err error
		found, err = s.readOrders(ctx, tx, orderIDs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("flashsale: settle %d orders: %w", len(ss), err)
	}
	return found, nil
}

func placeholders(n int) string { return "?" + strings.Repeat(", ?", n-1) }
