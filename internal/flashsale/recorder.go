package flashsale

import (
	"context"
	"database/sql"
	"strings"
)

// recorder writes admitted orders and their outbox events in group
// commits (groupCommit): one transaction with multi-row INSERTs for all
// the orders admitted meanwhile, each request answered 202 after its own
// group's commit. A group that fails (a repeated Idempotency-Key among
// them) is written again order by order, so that only the offending order
// fails.
type recorder = groupCommit[*Order, struct{}]

const maxBatch = 256

func newRecorder(st *store) *recorder {
	return newGroupCommit("order's commit", maxBatch, func(ctx context.Context, orders []*Order) []groupResult[struct{}] {
		err := st.recordBatch(ctx, orders)
		if err == nil || len(orders) == 1 {
			return allFailed[struct{}](len(orders), err)
		}
		out := make([]groupResult[struct{}], len(orders))
		for i, o := range orders {
			out[i].err = st.recordAdmitted(ctx, o)
		}
		return out
	})
}

// recordBatch writes orders and their outbox events in one transaction.
func (s *store) recordBatch(ctx context.Context, orders []*Order) error {
	if len(orders) == 1 {
		return s.recordAdmitted(ctx, orders[0])
	}
	var ob, eb strings.Builder
	oargs := make([]any, 0, 9*len(orders))
	eargs := make([]any, 0, 3*len(orders))
	ob.WriteString("INSERT INTO flashsale_orders (" + orderColumns + ") VALUES ")
	eb.WriteString("INSERT INTO flashsale_outbox (order_id, sale_id, published, created_at) VALUES ")
	for i, o := range orders {
		if i > 0 {
			ob.WriteString(", ")
			eb.WriteString(", ")
		}
		ob.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?)")
		eb.WriteString("(?, ?, 0, ?)")
		oargs = append(oargs, o.ID, o.SaleID, o.UserID, o.key, o.State, o.Reason, o.ChargeID, o.CreatedAt.UnixMilli(), settledMS(o))
		eargs = append(eargs, o.ID, o.SaleID, o.CreatedAt.UnixMilli())
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(ob.String()), oargs...); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(eb.String()), eargs...)
		return err
	})
}
