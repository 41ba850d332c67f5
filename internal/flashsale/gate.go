package flashsale

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"
)

// Admission is the gate's answer to one reservation.
type Admission int

const (
	Admitted  Admission = iota + 1
	SoldOut             // no unit left
	OverLimit           // the user holds per_user_limit units already
	NotOpen             // the gate does not know the sale (not opened here yet)
)

func (a Admission) String() string {
	return map[Admission]string{Admitted: "admitted", SoldOut: "sold out", OverLimit: "over the per-user limit", NotOpen: "not open"}[a]
}

// Hold is one unit the gate has given out: to an order, for a user, at a
// time. A held unit is in flight until its order is paid (Confirm: the
// unit is sold) or released (Release: the unit goes back).
type Hold struct {
	UserID string
	At     time.Time
	Sold   bool // only in Open's argument: an order already paid
}

// Gate is the async mode's admission step: an atomic check-and-reserve
// over a sale's units and its per-user limit, and nothing else — no
// database write — so that it turns away the many who come too late as
// fast as it can answer them. Its invariant, for every sale:
//
//	left + in flight + sold = stock
//
// Reserve, Release and Confirm are idempotent by order ID (a repeated
// Reserve of an order in flight admits it again without a second unit; a
// repeated Release or Confirm does nothing twice), which is what lets a
// crashed caller, the sweeper and a worker all retry them.
//
// Only the holds in flight are kept by order: a paid order's unit is a
// count and its user's share of the limit. So the sweeper's work is the
// size of the backlog, not of everything sold, and Stale hands it only the
// holds older than the deadline.
type Gate interface {
	// Open makes the sale known with stock units and a per-user limit,
	// and the holds given (orders already recorded), unless it is known
	// already: opening twice changes nothing.
	Open(ctx context.Context, saleID int64, stock, perUser int, holds map[int64]Hold) error
	Reserve(ctx context.Context, saleID int64, userID string, orderID int64, now time.Time) (Admission, error)
	// ReserveBatch answers several reservations of one sale in one atomic
	// step, in order: the answer is what Reserve would give each in turn.
	ReserveBatch(ctx context.Context, saleID int64, rs []Reservation) ([]Admission, error)
	// Release gives an order's unit in flight back; Confirm marks it sold.
	Release(ctx context.Context, saleID, orderID int64) (bool, error)
	Confirm(ctx context.Context, saleID, orderID int64) (bool, error)
	// Held is every hold in flight; Stale, at most limit of those taken
	// before cut, oldest first.
	Held(ctx context.Context, saleID int64) (map[int64]Hold, error)
	Stale(ctx context.Context, saleID int64, cut time.Time, limit int) (map[int64]Hold, error)
	// Units is the sale's units left and sold.
	Units(ctx context.Context, saleID int64) (left, sold int, err error)
}

// Reservation is one order asking the gate for a unit.
type Reservation struct {
	UserID  string
	OrderID int64
	At      time.Time
}

// memGate is the gate on embedded defaults: one mutex per process. It
// holds nothing durably; after a restart the service opens it again from
// the orders recorded in SQL, which are the truth.
type memGate struct {
	mu    sync.Mutex
	sales map[int64]*memSale
}

type memSale struct {
	left, sold, perUser int
	users               map[string]int
	held                map[int64]Hold
}

func newMemGate() *memGate { return &memGate{sales: map[int64]*memSale{}} }

func (g *memGate) Open(_ context.Context, saleID int64, stock, perUser int, holds map[int64]Hold) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.sales[saleID]; ok {
		return nil
	}
	s := &memSale{left: stock - len(holds), perUser: perUser, users: map[string]int{}, held: map[int64]Hold{}}
	for id, h := range holds {
		s.users[h.UserID]++
		if h.Sold {
			s.sold++
			continue
		}
		s.held[id] = Hold{UserID: h.UserID, At: h.At}
	}
	g.sales[saleID] = s
	return nil
}

func (g *memGate) Reserve(ctx context.Context, saleID int64, userID string, orderID int64, now time.Time) (Admission, error) {
	a, err := g.ReserveBatch(ctx, saleID, []Reservation{{UserID: userID, OrderID: orderID, At: now}})
	if err != nil {
		return 0, err
	}
	return a[0], nil
}

func (g *memGate) ReserveBatch(_ context.Context, saleID int64, rs []Reservation) ([]Admission, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Admission, len(rs))
	s, ok := g.sales[saleID]
	for i, r := range rs {
		switch {
		case !ok:
			out[i] = NotOpen
		case s.held[r.OrderID].UserID != "":
			out[i] = Admitted
		case s.left <= 0:
			out[i] = SoldOut
		case s.users[r.UserID] >= s.perUser:
			out[i] = OverLimit
		default:
			s.left--
			s.users[r.UserID]++
			s.held[r.OrderID] = Hold{UserID: r.UserID, At: r.At}
			out[i] = Admitted
		}
	}
	return out, nil
}

func (g *memGate) Release(_ context.Context, saleID, orderID int64) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sales[saleID]
	if !ok {
		return false, nil
	}
	h, ok := s.held[orderID]
	if !ok {
		return false, nil
	}
	delete(s.held, orderID)
	s.left++
	if s.users[h.UserID]--; s.users[h.UserID] <= 0 {
		delete(s.users, h.UserID)
	}
	return true, nil
}

func (g *memGate) Confirm(_ context.Context, saleID, orderID int64) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sales[saleID]
	if !ok {
		return false, nil
	}
	if _, ok := s.held[orderID]; !ok {
		return false, nil
	}
	delete(s.held, orderID)
	s.sold++
	return true, nil
}

func (g *memGate) Held(_ context.Context, saleID int64) (map[int64]Hold, error) {
	return g.Stale(context.Background(), saleID, time.Unix(1<<40, 0), math.MaxInt)
}

func (g *memGate) Stale(_ context.Context, saleID int64, cut time.Time, limit int) (map[int64]Hold, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sales[saleID]
	if !ok {
		return map[int64]Hold{}, nil
	}
	var ids []int64
	for id, h := range s.held {
		if h.At.Before(cut) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return s.held[ids[i]].At.Before(s.held[ids[j]].At) })
	out := make(map[int64]Hold, min(len(ids), limit))
	for _, id := range ids[:min(len(ids), limit)] {
		out[id] = s.held[id]
	}
	return out, nil
}

func (g *memGate) Units(_ context.Context, saleID int64) (int, int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.sales[saleID]; ok {
		return s.left, s.sold, nil
	}
	return 0, 0, nil
}
