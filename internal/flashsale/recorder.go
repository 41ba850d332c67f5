package flashsale

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// recorder writes admitted orders and their outbox events in group
// commits: a few goroutines each take every order waiting, up to
// maxBatch, and write them in one transaction with multi-row INSERTs;
// each request waits for its own batch's commit before it answers 202, so
// the guarantee is the single-order transaction's. Why: a profile of the
// async path on PostgreSQL put nearly all of its time in the four round
// trips and the commit of each order's own transaction; a batch pays them
// once for all the orders that arrived meanwhile. A batch that fails (a
// repeated Idempotency-Key among them) is written again order by order, so
// that only the offending order fails.
type recorder struct {
	store *store
	in    chan *pendingRecord
}

type pendingRecord struct {
	o    *Order
	done chan error
}

const (
	maxBatch  = 256
	recorders = 4
)

func newRecorder(st *store) *recorder {
	return &recorder{store: st, in: make(chan *pendingRecord, 4*maxBatch)}
}

// record waits until o and its event are committed, or ctx ends (then the
// outcome is unknown: the batch may commit yet).
func (r *recorder) record(ctx context.Context, o *Order) error {
	p := &pendingRecord{o: o, done: make(chan error, 1)}
	select {
	case r.in <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flashsale: gave up waiting for the order's commit: %w", ctx.Err())
	}
}

func (r *recorder) run(ctx context.Context) {
	for {
		var first *pendingRecord
		select {
		case <-ctx.Done():
			return
		case first = <-r.in:
		}
		batch := []*pendingRecord{first}
	fill:
		for len(batch) < maxBatch {
			select {
			case p := <-r.in:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		// The batch's transaction is no request's: a client that leaves
		// does not cut the others' commit.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		orders := make([]*Order, len(batch))
		for i, p := range batch {
			orders[i] = p.o
		}
		err := r.store.recordBatch(wctx, orders)
		if err != nil && len(batch) > 1 {
			for _, p := range batch {
				p.done <- r.store.recordAdmitted(wctx, p.o)
			}
		} else {
			for _, p := range batch {
				p.done <- err
			}
		}
		cancel()
	}
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
