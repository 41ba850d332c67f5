package flashsale

import (
	"regexp"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// Order states. An order is reserved (it holds a unit and waits for its
// payment), then exactly once either paid or released (its unit back).
const (
	StateReserved = "reserved"
	StatePaid     = "paid"
	StateReleased = "released"
)

// Sale is one flash sale: stock units of an item from StartsAt.
type Sale struct {
	ID           int64     `json:"id,string"`
	Item         string    `json:"item"`
	Stock        int       `json:"stock"`
	PerUserLimit int       `json:"per_user_limit"`
	PriceCents   int64     `json:"price_cents"`
	Mode         string    `json:"mode"` // sync or async: the mode of the process that made it
	StartsAt     time.Time `json:"starts_at"`
	CreatedAt    time.Time `json:"created_at"`

	stockLeft int // the sync mode's hot row
}

// SaleRequest is POST /api/v1/sales.
type SaleRequest struct {
	Item         string     `json:"item"`
	Stock        int        `json:"stock"`
	StartsAt     *time.Time `json:"starts_at"`      // absent: now
	PerUserLimit int        `json:"per_user_limit"` // absent: 1
	PriceCents   int64      `json:"price_cents"`    // absent: 1000
}

// Limits on what a sale may be.
const (
	maxStock   = 10_000_000
	maxPerUser = 1000
	maxPrice   = 100_000_000
)

func (r *SaleRequest) check(now time.Time) (*Sale, error) {
	item := strings.TrimSpace(r.Item)
	switch {
	case item == "" || len(item) > 200 || strings.ContainsRune(item, 0):
		return nil, apperr.E(apperr.Invalid, "item: 1 to 200 characters")
	case r.Stock < 1 || r.Stock > maxStock:
		return nil, apperr.E(apperr.Invalid, "stock: 1 to %d", maxStock)
	case r.PerUserLimit < 0 || r.PerUserLimit > maxPerUser:
		return nil, apperr.E(apperr.Invalid, "per_user_limit: 1 to %d", maxPerUser)
	case r.PriceCents < 0 || r.PriceCents > maxPrice:
		return nil, apperr.E(apperr.Invalid, "price_cents: 1 to %d", maxPrice)
	case r.StartsAt != nil && (r.StartsAt.Before(now.AddDate(-1, 0, 0)) || r.StartsAt.After(now.AddDate(1, 0, 0))):
		return nil, apperr.E(apperr.Invalid, "starts_at: within a year of now")
	}
	s := &Sale{Item: item, Stock: r.Stock, PerUserLimit: r.PerUserLimit, PriceCents: r.PriceCents, StartsAt: now, CreatedAt: now}
	if s.PerUserLimit == 0 {
		s.PerUserLimit = 1
	}
	if s.PriceCents == 0 {
		s.PriceCents = 1000
	}
	if r.StartsAt != nil {
		s.StartsAt = r.StartsAt.UTC()
	}
	s.StartsAt = s.StartsAt.Truncate(time.Millisecond)
	s.CreatedAt = s.CreatedAt.Truncate(time.Millisecond)
	return s, nil
}

// Order is one buyer's order.
type Order struct {
	ID        int64      `json:"id,string"`
	SaleID    int64      `json:"sale_id,string"`
	UserID    string     `json:"user_id"`
	State     string     `json:"state"`
	Reason    string     `json:"reason,omitempty"` // why it was released
	ChargeID  string     `json:"charge_id,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SettledAt *time.Time `json:"settled_at,omitempty"`

	key string // its Idempotency-Key
}

// OrderRequest is POST /api/v1/sales/{id}/orders.
type OrderRequest struct {
	UserID string `json:"userId"`
}

var (
	userIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)
	keyPattern    = regexp.MustCompile(`^[\x21-\x7e]{1,100}$`)
)

func checkUser(id string) error {
	if !userIDPattern.MatchString(id) {
		return apperr.E(apperr.Invalid, "userId: 1 to 64 of A-Z a-z 0-9 _ . @ -")
	}
	return nil
}

func checkKey(key string) error {
	if !keyPattern.MatchString(key) || strings.HasPrefix(key, "abandoned-") {
		return apperr.E(apperr.Invalid, "Idempotency-Key: 1 to 100 printable ASCII characters, no spaces (and not starting with abandoned-)")
	}
	return nil
}
