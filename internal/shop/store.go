package shop

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Product is one catalog entry.
type Product struct {
	ID         int64
	Name       string
	Category   string
	PriceCents int64
	Stock      int64
	CreatedAt  int64 // unix milliseconds
	UpdatedAt  int64
}

var errNotFound = errors.New("shop: not found")

// store is the shop's SQL side: catalog and its search index, carts, orders.
type store struct {
	db *sqldb.DB
}

func openStore(ctx context.Context, db *sqldb.DB) (*store, error) {
	if err := db.Migrate(ctx, migrations, "shop"); err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) q(query string) string { return s.db.Rebind(query) }

// createProduct inserts the product and its index terms in one transaction.
func (s *store) createProduct(ctx context.Context, p *Product) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO shop_products
			(product_id, name, category, price_cents, stock, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			p.ID, p.Name, p.Category, p.PriceCents, p.Stock, p.CreatedAt, p.UpdatedAt); err != nil {
			return fmt.Errorf("shop: insert product: %w", err)
		}
		terms := productTerms(p.Name, p.Category)
		query := `INSERT INTO shop_product_terms (term, product_id) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?), ", len(terms)), ", ")
		args := make([]any, 0, 2*len(terms))
		for _, t := range terms {
			args = append(args, t, p.ID)
		}
		if _, err := tx.ExecContext(ctx, s.q(query), args...); err != nil {
			return fmt.Errorf("shop: index product: %w", err)
		}
		return nil
	})
}

const productColumns = `p.product_id, p.name, p.category, p.price_cents, p.stock, p.created_at, p.updated_at`

func scanProduct(row interface{ Scan(...any) error }) (*Product, error) {
	var p Product
	if err := row.Scan(&p.ID, &p.Name, &p.Category, &p.PriceCents, &p.Stock, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	return &p, nil
}

func (s *store) product(ctx context.Context, id int64) (*Product, error) {
	p, err := scanProduct(s.db.QueryRowContext(ctx, s.q(`SELECT `+productColumns+` FROM shop_products p WHERE p.product_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("shop: get product %d: %w", id, err)
	}
	return p, nil
}

// updateProduct sets price and/or stock (nil leaves a field alone).
func (s *store) updateProduct(ctx context.Context, id int64, price, stock *int64, now int64) (*Product, error) {
	sets, args := []string{"updated_at = ?"}, []any{now}
	if price != nil {
		sets, args = append(sets, "price_cents = ?"), append(args, *price)
	}
	if stock != nil {
		sets, args = append(sets, "stock = ?"), append(args, *stock)
	}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE shop_products SET `+strings.Join(sets, ", ")+` WHERE product_id = ?`), append(args, id)...)
	if err != nil {
		return nil, fmt.Errorf("shop: update product %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// MySQL counts changed rows, not matched ones; updated_at always
		// changes, so 0 still means "no such product".
		return nil, errNotFound
	}
	return s.product(ctx, id)
}

// Search selects products; Words and Category are ANDed. Before is the
// cursor: only products with a smaller ID (older) are listed.
type Search struct {
	Words    []string
	Category string
	Before   int64
	Limit    int
}

// search lists products newest first. Without words or category it walks
// the primary key; otherwise the first term of queryPlan drives a scan of
// the term index in product ID order and each other term is one primary-key
// probe per candidate (EXISTS), so the engine never sorts and stops after
// Limit matches.
func (s *store) search(ctx context.Context, f Search) ([]*Product, error) {
	var args []any
	var q string
	terms := queryPlan(f.Words, f.Category)
	if len(terms) == 0 {
		q = `SELECT ` + productColumns + ` FROM shop_products p`
		if f.Before != 0 {
			q += ` WHERE p.product_id < ?`
			args = append(args, f.Before)
		}
		q += fmt.Sprintf(` ORDER BY p.product_id DESC LIMIT %d`, f.Limit)
	} else {
		var b strings.Builder
		b.WriteString(`SELECT ` + productColumns + ` FROM shop_product_terms t0 JOIN shop_products p ON p.product_id = t0.product_id WHERE t0.term = ?`)
		args = append(args, terms[0])
		if f.Before != 0 {
			b.WriteString(` AND t0.product_id < ?`)
			args = append(args, f.Before)
		}
		for i, t := range terms[1:] {
			fmt.Fprintf(&b, ` AND EXISTS (SELECT 1 FROM shop_product_terms t%d WHERE t%d.term = ? AND t%d.product_id = t0.product_id)`, i+1, i+1, i+1)
			args = append(args, t)
		}
		fmt.Fprintf(&b, ` ORDER BY t0.product_id DESC LIMIT %d`, f.Limit)
		q = b.String()
	}
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("shop: search: %w", err)
	}
	defer rows.Close()
	var out []*Product
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, fmt.Errorf("shop: search: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Cart is a cart and its lines.
type Cart struct {
	ID    int64
	State string // open, ordered
	Items []CartItem
}

// CartItem is one line of a cart, with the product's current price.
type CartItem struct {
	ProductID  int64
	Name       string
	Quantity   int
	PriceCents int64
}

const (
	cartOpen    = "open"
	cartOrdered = "ordered"
)

func (s *store) createCart(ctx context.Context, id, now int64) error {
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO shop_carts (cart_id, state, created_at) VALUES (?, ?, ?)`), id, cartOpen, now); err != nil {
		return fmt.Errorf("shop: create cart: %w", err)
	}
	return nil
}

func (s *store) cart(ctx context.Context, id int64) (*Cart, error) {
	c := &Cart{ID: id}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT state FROM shop_carts WHERE cart_id = ?`), id).Scan(&c.State)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("shop: get cart %d: %w", id, err)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT i.product_id, p.name, i.quantity, p.price_cents
		FROM shop_cart_items i JOIN shop_products p ON p.product_id = i.product_id
		WHERE i.cart_id = ? ORDER BY i.product_id`), id)
	if err != nil {
		return nil, fmt.Errorf("shop: get cart %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var it CartItem
		if err := rows.Scan(&it.ProductID, &it.Name, &it.Quantity, &it.PriceCents); err != nil {
			return nil, fmt.Errorf("shop: get cart %d: %w", id, err)
		}
		c.Items = append(c.Items, it)
	}
	return c, rows.Err()
}

// Why an item cannot be added.
var (
	errCartClosed   = errors.New("shop: the cart has been checked out")
	errNoProduct    = errors.New("shop: no such product")
	errCartTooLarge = errors.New("shop: too many lines or units in the cart")
)

// lockCart reads a cart's state inside tx, locking the row on PostgreSQL
// and MySQL (SQLite's immediate transactions already exclude other
// writers), so that an item added and a checkout cannot interleave.
func (s *store) lockCart(ctx context.Context, tx *sql.Tx, cartID int64) (string, error) {
	q := `SELECT state FROM shop_carts WHERE cart_id = ?`
	if s.db.Dialect != sqldb.SQLite {
		q += ` FOR UPDATE`
	}
	var state string
	err := tx.QueryRowContext(ctx, s.q(q), cartID).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNotFound
	}
	if err != nil {
		return "", fmt.Errorf("shop: lock cart %d: %w", cartID, err)
	}
	return state, nil
}

// addItem adds quantity units of a product to an open cart.
func (s *store) addItem(ctx context.Context, cartID, productID int64, quantity int) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		state, err := s.lockCart(ctx, tx, cartID)
		if err != nil {
			return err
		}
		if state != cartOpen {
			return errCartClosed
		}
		var exists int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM shop_products WHERE product_id = ?`), productID).Scan(&exists); err != nil {
			return fmt.Errorf("shop: add item: %w", err)
		}
		if exists == 0 {
			return errNoProduct
		}
		var lines, units, have int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(SUM(quantity), 0),
			COALESCE(SUM(CASE WHEN product_id = ? THEN 1 ELSE 0 END), 0) FROM shop_cart_items WHERE cart_id = ?`),
			productID, cartID).Scan(&lines, &units, &have); err != nil {
			return fmt.Errorf("shop: add item: %w", err)
		}
		if units+quantity > maxCartUnits || (have == 0 && lines >= maxCartLines) {
			return errCartTooLarge
		}
		if have > 0 {
			_, err = tx.ExecContext(ctx, s.q(`UPDATE shop_cart_items SET quantity = quantity + ? WHERE cart_id = ? AND product_id = ?`), quantity, cartID, productID)
		} else {
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO shop_cart_items (cart_id, product_id, quantity) VALUES (?, ?, ?)`), cartID, productID, quantity)
		}
		if err != nil {
			return fmt.Errorf("shop: add item: %w", err)
		}
		return nil
	})
}
