package flashsale

import (
	"context"
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
// time. A held unit is reserved or sold; a released order's unit goes
// back.
type Hold struct {
	UserID string
	At     time.Time
}

// Gate is the async mode's admission step: an atomic check-and-reserve
// over a sale's units and its per-user limit, and nothing else — no
// database write — so that it turns away the many who come too late as
// fast as it can answer them. Its invariant, for every sale:
//
//	left + len(held) = stock
//
// Reserve and Release are idempotent by order ID (a repeated Reserve of
// a held order admits it again without a second unit; a repeated Release
// gives nothing back twice), which is what lets a crashed caller, the
// sweeper and a worker all retry them.
type Gate interface {
	// Open makes the sale known with stock units and a per-user limit,
	// and the holds given (orders already recorded), unless it is known
	// already: opening twice changes nothing.
	Open(ctx context.Context, saleID int64, stock, perUser int, holds map[int64]Hold) error
	Reserve(ctx context.Context, saleID int64, userID string, orderID int64, now time.Time) (Admission, error)
	Release(ctx context.Context, saleID, orderID int64) (bool, error)
	Held(ctx context.Context, saleID int64) (map[int64]Hold, error)
	Left(ctx context.Context, saleID int64) (int, error)
}

// memGate is the gate on embedded defaults: one mutex per process. It
// holds nothing durably; after a restart the service opens it again from
// the orders recorded in SQL, which are the truth.
type memGate struct {
	mu    sync.Mutex
	sales map[int64]*memSale
}

type memSale struct {
	left, perUser int
	users         map[string]int
	held          map[int64]Hold
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
		s.held[id] = h
		s.users[h.UserID]++
	}
	g.sales[saleID] = s
	return nil
}

func (g *memGate) Reserve(_ context.Context, saleID int64, userID string, orderID int64, now time.Time) (Admission, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.sales[saleID]
	switch {
	case !ok:
		return NotOpen, nil
	case s.held[orderID].UserID != "":
		return Admitted, nil
	case s.left <= 0:
		return SoldOut, nil
	case s.users[userID] >= s.perUser:
		return OverLimit, nil
	}
	s.left--
	s.users[userID]++
	s.held[orderID] = Hold{UserID: userID, At: now}
	return Admitted, nil
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

func (g *memGate) Held(_ context.Context, saleID int64) (map[int64]Hold, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[int64]Hold{}
	if s, ok := g.sales[saleID]; ok {
		for id, h := range s.held {
			out[id] = h
		}
	}
	return out, nil
}

func (g *memGate) Left(_ context.Context, saleID int64) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.sales[saleID]; ok {
		return s.left, nil
	}
	return 0, nil
}
