package shop

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// Order is a checkout: the stock it took, what it costs, where it stands.
type Order struct {
	ID         int64
	Key        string // the client's Idempotency-Key
	CartID     int64
	State      string // pending, paid, failed
	TotalCents int64
	ChargeID   string
	Reason     string // why it failed
	Items      []OrderItem
	CreatedAt  int64
	UpdatedAt  int64
}

// OrderItem is one line of an order, priced when the order was placed.
type OrderItem struct {
	ProductID  int64
	Name       string // the product's name when it was bought
	Quantity   int
	PriceCents int64
}

const (
	orderPending = "pending"
	orderPaid    = "paid"
	orderFailed  = "failed"
)

// Why an order cannot be placed.
var (
	errKeyTaken  = errors.New("shop: the idempotency key has an order already")
	errEmptyCart = errors.New("shop: the cart is empty")
)

// outOfStockError names the product that ran out.
type outOfStockError struct {
	ProductID int64
	Wanted    int
	Available int64
}

func (e *outOfStockError) Error() string {
	return fmt.Sprintf("product %d: %d wanted, %d in stock", e.ProductID, e.Wanted, e.Available)
}

// cartOrderedError is a checkout of a cart that another key ordered.
type cartOrderedError struct{ OrderID int64 }

func (e *cartOrderedError) Error() string { return fmt.Sprintf("cart ordered as order %d", e.OrderID) }

const orderColumns = `order_id, idempotency_key, cart_id, state, total_cents, charge_id, reason, created_at, updated_at`

func (s *store) scanOrder(ctx context.Context, q sqlQuerier, where string, arg any) (*Order, error) {
	var o Order
	err := q.QueryRowContext(ctx, s.q(`SELECT `+orderColumns+` FROM shop_orders WHERE `+where), arg).
		Scan(&o.ID, &o.Key, &o.CartID, &o.State, &o.TotalCents, &o.ChargeID, &o.Reason, &o.CreatedAt, &o.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("shop: get order: %w", err)
	}
	rows, err := q.QueryContext(ctx, s.q(`SELECT product_id, name, quantity, price_cents FROM shop_order_items WHERE order_id = ? ORDER BY product_id`), o.ID)
	if err != nil {
		return nil, fmt.Errorf("shop: get order items: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var it OrderItem
		if err := rows.Scan(&it.ProductID, &it.Name, &it.Quantity, &it.PriceCents); err != nil {
			return nil, fmt.Errorf("shop: get order items: %w", err)
		}
		o.Items = append(o.Items, it)
	}
	return &o, rows.Err()
}

// sqlQuerier is what reads need from a *sql.DB or a *sql.Tx.
type sqlQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *store) orderByKey(ctx context.Context, key string) (*Order, error) {
	return s.scanOrder(ctx, s.db, "idempotency_key = ?", key)
}

func (s *store) order(ctx context.Context, id int64) (*Order, error) {
	return s.scanOrder(ctx, s.db, "order_id = ?", id)
}

// placeOrder turns an open cart into a pending order in one transaction:
// the cart is locked, each line's stock is taken by a conditional
// decrement (stock >= quantity, checked by the database under its row
// lock, so two checkouts can never both take the last unit), the order and
// its lines are written at the current prices, and the cart is closed. Any
// failure rolls all of it back.
func (s *store) placeOrder(ctx context.Context, o *Order) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error { return s.placeOrderTx(ctx, tx, o) })
}

// placeDirect is a purchase in one transaction, with no cart: the lines
// (validated, merged and in product order, from the caller) are priced
// from the products, their stock taken as placeOrder takes it, and the
// order written with its lines. Such an order's cart ID is minus its own
// ID: no cart has it, and the unique column stays unique.
func (s *store) placeDirect(ctx context.Context, o *Order, lines []CartItem) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		args := make([]any, len(lines))
		for i, l := range lines {
			args[i] = l.ProductID
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT product_id, name, price_cents FROM shop_products WHERE product_id IN (`+
			strings.TrimSuffix(strings.Repeat("?, ", len(lines)), ", ")+`) ORDER BY product_id`), args...)
		if err != nil {
			return fmt.Errorf("shop: read products: %w", err)
		}
		o.Items, o.TotalCents = make([]OrderItem, 0, len(lines)), 0
		for rows.Next() {
			var it OrderItem
			if err := rows.Scan(&it.ProductID, &it.Name, &it.PriceCents); err != nil {
				rows.Close()
				return fmt.Errorf("shop: read products: %w", err)
			}
			o.Items = append(o.Items, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("shop: read products: %w", err)
		}
		for i, l := range lines {
			if i >= len(o.Items) || o.Items[i].ProductID != l.ProductID {
				return &noProductError{ProductID: l.ProductID}
			}
			o.Items[i].Quantity = l.Quantity
			o.TotalCents += int64(l.Quantity) * o.Items[i].PriceCents
		}
		return s.writeOrder(ctx, tx, o)
	})
}

// noProductError names a product a purchase asked for that does not exist.
type noProductError struct{ ProductID int64 }

func (e *noProductError) Error() string { return fmt.Sprintf("shop: no product %d", e.ProductID) }

func (s *store) placeOrderTx(ctx context.Context, tx *sql.Tx, o *Order) error {
	state, err := s.lockCart(ctx, tx, o.CartID)
	if err != nil {
		return err
	}
	if state != cartOpen {
		var id int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT order_id FROM shop_orders WHERE cart_id = ?`), o.CartID).Scan(&id); err != nil {
			return fmt.Errorf("shop: cart %d is %s: %w", o.CartID, state, err)
		}
		return &cartOrderedError{OrderID: id}
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT i.product_id, p.name, i.quantity, p.price_cents
		FROM shop_cart_items i JOIN shop_products p ON p.product_id = i.product_id
		WHERE i.cart_id = ? ORDER BY i.product_id`), o.CartID)
	if err != nil {
		return fmt.Errorf("shop: read cart: %w", err)
	}
	o.Items, o.TotalCents = nil, 0
	for rows.Next() {
		var it OrderItem
		if err := rows.Scan(&it.ProductID, &it.Name, &it.Quantity, &it.PriceCents); err != nil {
			rows.Close()
			return fmt.Errorf("shop: read cart: %w", err)
		}
		o.Items = append(o.Items, it)
		o.TotalCents += int64(it.Quantity) * it.PriceCents
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("shop: read cart: %w", err)
	}
	if len(o.Items) == 0 {
		return errEmptyCart
	}
	if err := s.writeOrder(ctx, tx, o); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE shop_carts SET state = ? WHERE cart_id = ?`), cartOrdered, o.CartID); err != nil {
		return fmt.Errorf("shop: close cart: %w", err)
	}
	return nil
}

// writeOrder takes each line's stock and writes the pending order with its
// lines, inside tx.
func (s *store) writeOrder(ctx context.Context, tx *sql.Tx, o *Order) error {
	// Lines in product ID order: concurrent checkouts lock products in
	// the same order and cannot deadlock.
	for _, it := range o.Items {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE shop_products SET stock = stock - ? WHERE product_id = ? AND stock >= ?`),
			it.Quantity, it.ProductID, it.Quantity)
		if err != nil {
			return fmt.Errorf("shop: take stock: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var avail int64
			_ = tx.QueryRowContext(ctx, s.q(`SELECT stock FROM shop_products WHERE product_id = ?`), it.ProductID).Scan(&avail)
			return &outOfStockError{ProductID: it.ProductID, Wanted: it.Quantity, Available: avail}
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO shop_orders (`+orderColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		o.ID, o.Key, o.CartID, o.State, o.TotalCents, o.ChargeID, o.Reason, o.CreatedAt, o.UpdatedAt); err != nil {
		if sqldb.IsUniqueViolation(err) {
			return errKeyTaken
		}
		return fmt.Errorf("shop: insert order: %w", err)
	}
	query := `INSERT INTO shop_order_items (order_id, product_id, name, quantity, price_cents) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", len(o.Items)), ", ")
	args := make([]any, 0, 5*len(o.Items))
	for _, it := range o.Items {
		args = append(args, o.ID, it.ProductID, it.Name, it.Quantity, it.PriceCents)
	}
	if _, err := tx.ExecContext(ctx, s.q(query), args...); err != nil {
		return fmt.Errorf("shop: insert order items: %w", err)
	}
	return nil
}

// markPaid records the charge of a pending order. It reports false when
// the order was no longer pending (the reconciler failed it meanwhile).
func (s *store) markPaid(ctx context.Context, id int64, chargeID string, now int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE shop_orders SET state = ?, charge_id = ?, updated_at = ? WHERE order_id = ? AND state = ?`),
		orderPaid, chargeID, now, id, orderPending)
	if err != nil {
		return false, fmt.Errorf("shop: mark order %d paid: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// failOrder gives up a pending order and puts its stock back, once: the
// state change and the stock return are one transaction guarded by
// state = pending. It reports whether this call did it.
func (s *store) failOrder(ctx context.Context, o *Order, reason string, now int64) (bool, error) {
	done := false
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE shop_orders SET state = ?, reason = ?, updated_at = ? WHERE order_id = ? AND state = ?`),
			orderFailed, reason, now, o.ID, orderPending)
		if err != nil {
			return fmt.Errorf("shop: fail order %d: %w", o.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		for _, it := range o.Items {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE shop_products SET stock = stock + ? WHERE product_id = ?`), it.Quantity, it.ProductID); err != nil {
				return fmt.Errorf("shop: return stock: %w", err)
			}
		}
		done = true
		return nil
	})
	return done, err
}

// touch moves a pending order's updated_at, so the reconciler's next look
// at it waits a full period.
func (s *store) touch(ctx context.Context, id, now int64) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE shop_orders SET updated_at = ? WHERE order_id = ? AND state = ?`), now, id, orderPending)
	return err
}

// stalePending lists pending orders not touched since before, oldest first.
func (s *store) stalePending(ctx context.Context, before int64, limit int) ([]*Order, error) {
	rows, err := s.db.QueryContext(ctx, s.q(fmt.Sprintf(`SELECT order_id FROM shop_orders WHERE state = ? AND updated_at < ? ORDER BY updated_at LIMIT %d`, limit)),
		orderPending, before)
	if err != nil {
		return nil, fmt.Errorf("shop: pending orders: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []*Order
	for _, id := range ids {
		o, err := s.order(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}
