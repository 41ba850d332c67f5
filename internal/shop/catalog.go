package shop

import (
	"context"
	"errors"
	"unicode"
	"unicode/utf8"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// Limits of the catalog and carts.
const (
	maxNameLen     = 200
	maxCategoryLen = 50
	maxPriceCents  = 100_000_000_00 // 100 million
	maxStock       = 1_000_000_000
	maxCartLines   = 50
	maxCartUnits   = 1000
	maxLineUnits   = 100
	maxKeyLen      = 100
)

// NewProduct is a product to create; nil fields are missing.
type NewProduct struct {
	Name       string `json:"name"`
	Category   string `json:"category"`
	PriceCents *int64 `json:"price_cents"`
	Stock      *int64 `json:"stock"`
}

// ProductUpdate changes price and/or stock.
type ProductUpdate struct {
	PriceCents *int64 `json:"price_cents"`
	Stock      *int64 `json:"stock"`
}

func checkName(s string) error {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxNameLen {
		return apperr.E(apperr.Invalid, "name: 1–%d characters of UTF-8", maxNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return apperr.E(apperr.Invalid, "name: no control characters")
		}
	}
	if len(nameTerms(s, 1)) == 0 {
		return apperr.E(apperr.Invalid, "name: needs a word of at least %d letters or digits (it is what search finds)", minTermLen)
	}
	return nil
}

func checkCategory(s string) error {
	if s == "" || len(s) > maxCategoryLen {
		return apperr.E(apperr.Invalid, "category: 1–%d characters of a–z, 0–9 and -", maxCategoryLen)
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return apperr.E(apperr.Invalid, "category: 1–%d characters of a–z, 0–9 and -", maxCategoryLen)
		}
	}
	return nil
}

func checkPrice(p *int64) error {
	if p == nil || *p < 1 || *p > maxPriceCents {
		return apperr.E(apperr.Invalid, "price_cents: an integer from 1 to %d", int64(maxPriceCents))
	}
	return nil
}

func checkStock(n *int64) error {
	if n == nil || *n < 0 || *n > maxStock {
		return apperr.E(apperr.Invalid, "stock: an integer from 0 to %d", maxStock)
	}
	return nil
}

// CreateProduct validates and stores a product with its search terms.
func (s *Service) CreateProduct(ctx context.Context, in NewProduct) (*Product, error) {
	for _, err := range []error{checkName(in.Name), checkCategory(in.Category), checkPrice(in.PriceCents), checkStock(in.Stock)} {
		if err != nil {
			return nil, err
		}
	}
	id, err := s.nextID()
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UnixMilli()
	p := &Product{ID: id, Name: in.Name, Category: in.Category, PriceCents: *in.PriceCents, Stock: *in.Stock, CreatedAt: now, UpdatedAt: now}
	if err := s.db(ctx, func(ctx context.Context) error { return s.store.createProduct(ctx, p) }); err != nil {
		return nil, err
	}
	return p, nil
}

// Product returns one product.
func (s *Service) Product(ctx context.Context, id int64) (*Product, error) {
	var p *Product
	err := s.db(ctx, func(ctx context.Context) (err error) { p, err = s.store.product(ctx, id); return err })
	if errors.Is(err, errNotFound) {
		return nil, apperr.E(apperr.NotFound, "no product %d", id)
	}
	return p, err
}

// UpdateProduct sets a product's price and/or stock.
func (s *Service) UpdateProduct(ctx context.Context, id int64, in ProductUpdate) (*Product, error) {
	if in.PriceCents == nil && in.Stock == nil {
		return nil, apperr.E(apperr.Invalid, "give price_cents, stock or both")
	}
	if in.PriceCents != nil {
		if err := checkPrice(in.PriceCents); err != nil {
			return nil, err
		}
	}
	if in.Stock != nil {
		if err := checkStock(in.Stock); err != nil {
			return nil, err
		}
	}
	var p *Product
	err := s.db(ctx, func(ctx context.Context) (err error) {
		p, err = s.store.updateProduct(ctx, id, in.PriceCents, in.Stock, s.cfg.Now().UnixMilli())
		return err
	})
	if errors.Is(err, errNotFound) {
		return nil, apperr.E(apperr.NotFound, "no product %d", id)
	}
	return p, err
}

// Search lists products matching every word and the category.
func (s *Service) Search(ctx context.Context, f Search) ([]*Product, error) {
	var out []*Product
	err := s.db(ctx, func(ctx context.Context) (err error) { out, err = s.store.search(ctx, f); return err })
	return out, err
}

// CreateCart opens an empty cart.
func (s *Service) CreateCart(ctx context.Context) (int64, error) {
	id, err := s.nextID()
	if err != nil {
		return 0, err
	}
	return id, s.db(ctx, func(ctx context.Context) error { return s.store.createCart(ctx, id, s.cfg.Now().UnixMilli()) })
}

// Cart returns a cart with its lines at current prices.
func (s *Service) Cart(ctx context.Context, id int64) (*Cart, error) {
	var c *Cart
	err := s.db(ctx, func(ctx context.Context) (err error) { c, err = s.store.cart(ctx, id); return err })
	if errors.Is(err, errNotFound) {
		return nil, apperr.E(apperr.NotFound, "no cart %d", id)
	}
	return c, err
}

// AddItem adds units of a product to an open cart.
func (s *Service) AddItem(ctx context.Context, cartID, productID int64, quantity int) error {
	if quantity < 1 || quantity > maxLineUnits {
		return apperr.E(apperr.Invalid, "quantity: an integer from 1 to %d", maxLineUnits)
	}
	err := s.db(ctx, func(ctx context.Context) error { return s.store.addItem(ctx, cartID, productID, quantity) })
	switch {
	case errors.Is(err, errNotFound):
		return apperr.E(apperr.NotFound, "no cart %d", cartID)
	case errors.Is(err, errNoProduct):
		return apperr.E(apperr.NotFound, "no product %d", productID)
	case errors.Is(err, errCartClosed):
		return apperr.E(apperr.Conflict, "cart %d has been checked out; open a new cart", cartID)
	case errors.Is(err, errCartTooLarge):
		return apperr.E(apperr.Conflict, "cart %d is full: at most %d lines and %d units", cartID, maxCartLines, maxCartUnits)
	}
	return err
}

// Order returns an order.
func (s *Service) Order(ctx context.Context, id int64) (*Order, error) {
	var o *Order
	err := s.db(ctx, func(ctx context.Context) (err error) { o, err = s.store.order(ctx, id); return err })
	if errors.Is(err, errNotFound) {
		return nil, apperr.E(apperr.NotFound, "no order %d", id)
	}
	return o, err
}
