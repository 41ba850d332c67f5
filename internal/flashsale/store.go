package flashsale

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

type store struct{ db *sqldb.DB }

func openStore(ctx context.Context, db *sqldb.DB) (*store, error) {
	if err := db.Migrate(ctx, migrations, "flashsale"); err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) q(query string) string { return s.db.Rebind(query) }

const saleColumns = "sale_id, item, stock, stock_left, per_user_limit, price_cents, starts_at, created_at, mode"

func (s *store) createSale(ctx context.Context, sl *Sale) error {
	_, err := s.db.ExecContext(ctx, s.q("INSERT INTO flashsale_sales ("+saleColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		sl.ID, sl.Item, sl.Stock, sl.Stock, sl.PerUserLimit, sl.PriceCents, sl.StartsAt.UnixMilli(), sl.CreatedAt.UnixMilli(), sl.Mode)
	if err != nil {
		return fmt.Errorf("flashsale: create sale: %w", err)
	}
	return nil
}

func scanSale(row interface{ Scan(...any) error }) (*Sale, error) {
	var sl Sale
	var starts, created int64
	if err := row.Scan(&sl.ID, &sl.Item, &sl.Stock, &sl.stockLeft, &sl.PerUserLimit, &sl.PriceCents, &starts, &created, &sl.Mode); err != nil {
		return nil, err
	}
	sl.StartsAt, sl.CreatedAt = time.UnixMilli(starts).UTC(), time.UnixMilli(created).UTC()
	return &sl, nil
}

func (s *store) sale(ctx context.Context, id int64) (*Sale, error) {
	sl, err := scanSale(s.db.QueryRowContext(ctx, s.q("SELECT "+saleColumns+" FROM flashsale_sales WHERE sale_id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.E(apperr.NotFound, "no sale %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("flashsale: read sale: %w", err)
	}
	return sl, nil
}

// sales is the newest sales; of one mode unless mode is "".
func (s *store) sales(ctx context.Context, mode string, limit int) ([]*Sale, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+saleColumns+" FROM flashsale_sales WHERE mode = ? OR ? = '' ORDER BY sale_id DESC LIMIT ?"), mode, mode, limit)
	if err != nil {
		return nil, fmt.Errorf("flashsale: list sales: %w", err)
	}
	defer rows.Close()
	var out []*Sale
	for rows.Next() {
		sl, err := scanSale(rows)
		if err != nil {
			return nil, fmt.Errorf("flashsale: list sales: %w", err)
		}
		out = append(out, sl)
	}
	return out, rows.Err()
}

const orderColumns = "order_id, sale_id, user_id, idempotency_key, state, reason, charge_id, created_at, settled_at"

func scanOrder(row interface{ Scan(...any) error }) (*Order, error) {
	var o Order
	var created, settled int64
	if err := row.Scan(&o.ID, &o.SaleID, &o.UserID, &o.key, &o.State, &o.Reason, &o.ChargeID, &created, &settled); err != nil {
		return nil, err
	}
	o.CreatedAt = time.UnixMilli(created).UTC()
	if settled > 0 {
		t := time.UnixMilli(settled).UTC()
		o.SettledAt = &t
	}
	return &o, nil
}

func (s *store) order(ctx context.Context, id int64) (*Order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, s.q("SELECT "+orderColumns+" FROM flashsale_orders WHERE order_id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.E(apperr.NotFound, "no order %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("flashsale: read order: %w", err)
	}
	return o, nil
}

// orderByKey is the order a sale's Idempotency-Key made, if any.
func (s *store) orderByKey(ctx context.Context, saleID int64, key string) (*Order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, s.q("SELECT "+orderColumns+" FROM flashsale_orders WHERE sale_id = ? AND idempotency_key = ?"), saleID, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flashsale: read order by key: %w", err)
	}
	return o, nil
}

func insertOrder(ctx context.Context, tx *sql.Tx, q func(string) string, o *Order) error {
	_, err := tx.ExecContext(ctx, q("INSERT INTO flashsale_orders ("+orderColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		o.ID, o.SaleID, o.UserID, o.key, o.State, o.Reason, o.ChargeID, o.CreatedAt.UnixMilli(), settledMS(o))
	return err
}

func settledMS(o *Order) int64 {
	if o.SettledAt == nil {
		return 0
	}
	return o.SettledAt.UnixMilli()
}

// recordAdmitted writes an order the gate admitted and its outbox event in
// one transaction: either both exist or neither does.
func (s *store) recordAdmitted(ctx context.Context, o *Order) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := insertOrder(ctx, tx, s.q, o); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q("INSERT INTO flashsale_outbox (order_id, sale_id, published, created_at) VALUES (?, ?, 0, ?)"), o.ID, o.SaleID, o.CreatedAt.UnixMilli())
		return err
	})
}

// reserveSync is the sync mode's admission: the conditional decrement of
// the sale's hot row, the per-user count under that row's lock, and the
// order row, in one transaction.
func (s *store) reserveSync(ctx context.Context, o *Order, perUser int) (Admission, error) {
	var adm Admission
	errRefused := errors.New("refused")
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("UPDATE flashsale_sales SET stock_left = stock_left - 1 WHERE sale_id = ? AND stock_left > 0"), o.SaleID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			adm = SoldOut
			return errRefused
		}
		// The row lock taken above serialises this sale's orders (on
		// PostgreSQL and MariaDB; SQLite has one writer), so the count
		// cannot race another order of the same user.
		var held int
		if err := tx.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM flashsale_orders WHERE sale_id = ? AND user_id = ? AND state <> 'released'"), o.SaleID, o.UserID).Scan(&held); err != nil {
			return err
		}
		if held >= perUser {
			adm = OverLimit
			return errRefused
		}
		adm = Admitted
		return insertOrder(ctx, tx, s.q, o)
	})
	if errors.Is(err, errRefused) {
		return adm, nil
	}
	if err != nil {
		return 0, err
	}
	return Admitted, nil
}

// settle moves a reserved order to paid or released, once: it reports
// false when the order was not reserved any more (another settled it).
// Releasing in sync mode gives the unit back to the hot row in the same
// transaction; in async mode the caller gives it back to the gate after.
func (s *store) settle(ctx context.Context, id int64, state, reason, chargeID string, now time.Time, syncStock bool) (bool, error) {
	changed := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q("UPDATE flashsale_orders SET state = ?, reason = ?, charge_id = ?, settled_at = ? WHERE order_id = ? AND state = 'reserved'"),
			state, reason, chargeID, now.UnixMilli(), id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		changed = true
		if state == StateReleased && syncStock {
			_, err = tx.ExecContext(ctx, s.q("UPDATE flashsale_sales SET stock_left = stock_left + 1 WHERE sale_id = (SELECT sale_id FROM flashsale_orders WHERE order_id = ?)"), id)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("flashsale: settle order %d: %w", id, err)
	}
	return changed, nil
}

// tombstone records, for an order the gate admitted but SQL never got (its
// API process died in between), that it was released: it wins over a late
// insert of the same order, which then fails on the primary key.
func (s *store) tombstone(ctx context.Context, o *Order) (bool, error) {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error { return insertOrder(ctx, tx, s.q, o) })
	if sqldb.IsUniqueViolation(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flashsale: tombstone order %d: %w", o.ID, err)
	}
	return true, nil
}

// stale is the reserved orders of a mode's sales created before cut,
// oldest first.
func (s *store) stale(ctx context.Context, mode string, cut time.Time, limit int) ([]*Order, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT o."+strings.ReplaceAll(orderColumns, ", ", ", o.")+" FROM flashsale_orders o JOIN flashsale_sales s ON s.sale_id = o.sale_id "+
		"WHERE o.state = 'reserved' AND o.created_at < ? AND s.mode = ? ORDER BY o.created_at LIMIT ?"), cut.UnixMilli(), mode, limit)
	if err != nil {
		return nil, fmt.Errorf("flashsale: stale orders: %w", err)
	}
	defer rows.Close()
	var out []*Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// states is each order's state among ids (missing: absent).
func (s *store) states(ctx context.Context, saleID int64) (map[int64]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT order_id, state FROM flashsale_orders WHERE sale_id = ?"), saleID)
	if err != nil {
		return nil, fmt.Errorf("flashsale: order states: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var st string
		if err := rows.Scan(&id, &st); err != nil {
			return nil, err
		}
		out[id] = st
	}
	return out, rows.Err()
}

// statesOf is the states of the orders given that exist.
func (s *store) statesOf(ctx context.Context, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		q := "SELECT order_id, state FROM flashsale_orders WHERE order_id IN (" + placeholders(len(chunk)) + ")"
		rows, err := s.db.QueryContext(ctx, s.q(q), args...)
		if err != nil {
			return nil, fmt.Errorf("flashsale: order states: %w", err)
		}
		for rows.Next() {
			var id int64
			var st string
			if err := rows.Scan(&id, &st); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = st
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// holds is the orders of a sale that hold a unit (reserved or paid), as
// the gate's holds: what a gate opened after a restart starts from.
func (s *store) holds(ctx context.Context, saleID int64) (map[int64]Hold, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT order_id, user_id, created_at, state FROM flashsale_orders WHERE sale_id = ? AND state <> 'released'"), saleID)
	if err != nil {
		return nil, fmt.Errorf("flashsale: holds: %w", err)
	}
	defer rows.Close()
	out := map[int64]Hold{}
	for rows.Next() {
		var id, at int64
		var user, state string
		if err := rows.Scan(&id, &user, &at, &state); err != nil {
			return nil, err
		}
		out[id] = Hold{UserID: user, At: time.UnixMilli(at), Sold: state == StatePaid}
	}
	return out, rows.Err()
}

// Counts are a sale's orders by state.
type Counts struct {
	Reserved int `json:"reserved"`
	Paid     int `json:"paid"`
	Released int `json:"released"`
}

func (s *store) counts(ctx context.Context, saleID int64) (Counts, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT state, COUNT(*) FROM flashsale_orders WHERE sale_id = ? GROUP BY state"), saleID)
	if err != nil {
		return Counts{}, fmt.Errorf("flashsale: counts: %w", err)
	}
	defer rows.Close()
	var c Counts
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return Counts{}, err
		}
		switch st {
		case StateReserved:
			c.Reserved = n
		case StatePaid:
			c.Paid = n
		case StateReleased:
			c.Released = n
		}
	}
	return c, rows.Err()
}

// overLimit is how many users of a sale hold more than limit units.
func (s *store) overLimit(ctx context.Context, saleID int64, limit int) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM (SELECT user_id FROM flashsale_orders WHERE sale_id = ? AND state <> 'released' GROUP BY user_id HAVING COUNT(*) > ?) AS over_limit"), saleID, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("flashsale: users over the limit: %w", err)
	}
	return n, nil
}

// unpublished is the outbox's oldest events not yet published.
func (s *store) unpublished(ctx context.Context, limit int) ([][2]int64, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT order_id, sale_id FROM flashsale_outbox WHERE published = 0 ORDER BY order_id LIMIT ?"), limit)
	if err != nil {
		return nil, fmt.Errorf("flashsale: outbox: %w", err)
	}
	defer rows.Close()
	var out [][2]int64
	for rows.Next() {
		var id, sale int64
		if err := rows.Scan(&id, &sale); err != nil {
			return nil, err
		}
		out = append(out, [2]int64{id, sale})
	}
	return out, rows.Err()
}

// markPublished marks a relayed batch in one statement: the relay's
// bookkeeping costs one round trip per batch, not one per event.
func (s *store) markPublished(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	_, err := s.db.ExecContext(ctx, s.q("UPDATE flashsale_outbox SET published = 1 WHERE order_id IN ("+placeholders(len(ids))+")"), args...)
	return err
}

// notice is one notification to record: a kind of message sent about an
// order.
type notice struct {
	orderID int64
	kind    string
	at      time.Time
}

// notifyBatch records notices in one statement. A notice sent already (a
// redelivered event) makes the statement fail; the batch is then recorded
// notice by notice, so that only the repeats are skipped.
func (s *store) notifyBatch(ctx context.Context, ns []notice) error {
	args := make([]any, 0, 3*len(ns))
	for _, n := range ns {
		args = append(args, n.orderID, n.kind, n.at.UnixMilli())
	}
	_, err := s.db.ExecContext(ctx, s.q("INSERT INTO flashsale_notifications (order_id, kind, sent_at) VALUES (?, ?, ?)"+strings.Repeat(", (?, ?, ?)", len(ns)-1)), args...)
	if err == nil || !sqldb.IsUniqueViolation(err) || len(ns) == 1 {
		if sqldb.IsUniqueViolation(err) {
			return nil // sent already: a redelivery
		}
		return err
	}
	for _, n := range ns {
		if err := s.notifyBatch(ctx, []notice{n}); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) notifications(ctx context.Context, saleID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM flashsale_notifications n JOIN flashsale_orders o ON o.order_id = n.order_id WHERE o.sale_id = ?"), saleID).Scan(&n)
	return n, err
}
