package flashsale

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// gates runs one contract against every gate.
func gates(t *testing.T, fn func(t *testing.T, g Gate)) {
	t.Run("memory", func(t *testing.T) { fn(t, newMemGate()) })
	t.Run("redis", func(t *testing.T) {
		opts, err := redis.ParseURL(testsvc.Redis(t))
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opts)
		t.Cleanup(func() { rdb.Close() })
		fn(t, newRedisGate(rdb, testsvc.Name("gate")))
	})
}

// Thousands of buyers racing for 100 units: exactly 100 admitted, none
// twice per user beyond the limit, and left + held = stock throughout.
func TestGateNeverOversells(t *testing.T) {
	gates(t, func(t *testing.T, g Gate) {
		ctx := context.Background()
		const stock, buyers = 100, 3000
		saleID := time.Now().UnixNano()
		if err := g.Open(ctx, saleID, stock, 2, nil); err != nil {
			t.Fatal(err)
		}
		var admitted, soldOut, overLimit atomic.Int64
		perUser := make([]atomic.Int64, 500)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 64)
		for i := 0; i < buyers; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				user := i % len(perUser)
				a, err := g.Reserve(ctx, saleID, fmt.Sprintf("user-%d", user), int64(i+1), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				switch a {
				case Admitted:
					admitted.Add(1)
					perUser[user].Add(1)
				case SoldOut:
					soldOut.Add(1)
				case OverLimit:
					overLimit.Add(1)
				default:
					t.Errorf("admission %v", a)
				}
			}(i)
		}
		wg.Wait()
		if admitted.Load() != stock || soldOut.Load()+overLimit.Load() != buyers-stock {
			t.Fatalf("admitted %d, sold out %d, over limit %d; want %d admitted", admitted.Load(), soldOut.Load(), overLimit.Load(), stock)
		}
		for u := range perUser {
			if n := perUser[u].Load(); n > 2 {
				t.Fatalf("user-%d got %d units, limit 2", u, n)
			}
		}
		left, _, _ := g.Units(ctx, saleID)
		held, _ := g.Held(ctx, saleID)
		if left != 0 || len(held) != stock {
			t.Fatalf("left %d, held %d; want 0 and %d", left, len(held), stock)
		}
	})
}

// Reserve and Release are idempotent by order; a release frees the user's
// limit and the unit; opening again changes nothing; holds given at open
// count.
func TestGateIdempotence(t *testing.T) {
	gates(t, func(t *testing.T, g Gate) {
		ctx := context.Background()
		saleID := time.Now().UnixNano()
		if a, _ := g.Reserve(ctx, saleID, "u", 1, time.Now()); a != NotOpen {
			t.Fatalf("an unknown sale: %v", a)
		}
		at := time.UnixMilli(time.Now().UnixMilli())
		if err := g.Open(ctx, saleID, 3, 1, map[int64]Hold{7: {UserID: "early", At: at}}); err != nil {
			t.Fatal(err)
		}
		if err := g.Open(ctx, saleID, 100, 9, nil); err != nil { // a second open: no effect
			t.Fatal(err)
		}
		if left, _, _ := g.Units(ctx, saleID); left != 2 {
			t.Fatalf("left %d after opening with 3 units and one hold", left)
		}
		for i := 0; i < 2; i++ {
			if a, _ := g.Reserve(ctx, saleID, "alice", 10, time.Now()); a != Admitted {
				t.Fatalf("reserve #%d of the same order: %v", i+1, a)
			}
		}
		if left, _, _ := g.Units(ctx, saleID); left != 1 {
			t.Fatalf("a repeated reserve took a second unit: left %d", left)
		}
		if a, _ := g.Reserve(ctx, saleID, "alice", 11, time.Now()); a != OverLimit {
			t.Fatalf("alice's second order, limit 1: %v", a)
		}
		if a, _ := g.Reserve(ctx, saleID, "early", 12, time.Now()); a != OverLimit {
			t.Fatalf("a user holding a unit from the open: %v", a)
		}
		for i, want := range []bool{true, false} {
			if ok, err := g.Release(ctx, saleID, 10); err != nil || ok != want {
				t.Fatalf("release #%d: %v %v, want %v", i+1, ok, err, want)
			}
		}
		if a, _ := g.Reserve(ctx, saleID, "alice", 11, time.Now()); a != Admitted {
			t.Fatalf("after her release alice may buy again: %v", a)
		}
		if a, _ := g.Reserve(ctx, saleID, "bob", 13, time.Now()); a != Admitted {
			t.Fatalf("bob takes the last unit: %v", a)
		}
		if a, _ := g.Reserve(ctx, saleID, "carol", 14, time.Now()); a != SoldOut {
			t.Fatalf("after the last unit: %v", a)
		}
		held, _ := g.Held(ctx, saleID)
		if len(held) != 3 || held[7].UserID != "early" || !held[7].At.Equal(at) || held[11].UserID != "alice" {
			t.Fatalf("holds %v", held)
		}
	})
}

// Confirm turns a hold in flight into a unit sold: it leaves Held and
// Stale, keeps its user's share of the limit, and left + in flight + sold
// = stock throughout; a paid order given at Open counts as sold. Stale
// hands out only the holds older than the cut, oldest first, up to the
// limit.
func TestGateConfirmAndStale(t *testing.T) {
	gates(t, func(t *testing.T, g Gate) {
		ctx := context.Background()
		saleID := time.Now().UnixNano()
		base := time.UnixMilli(time.Now().UnixMilli())
		opened := map[int64]Hold{1: {UserID: "paid", At: base, Sold: true}, 2: {UserID: "waiting", At: base.Add(time.Millisecond)}}
		if err := g.Open(ctx, saleID, 10, 1, opened); err != nil {
			t.Fatal(err)
		}
		books := func(wantLeft, wantHeld, wantSold int) {
			t.Helper()
			left, sold, err := g.Units(ctx, saleID)
			held, _ := g.Held(ctx, saleID)
			if err != nil || left != wantLeft || len(held) != wantHeld || sold != wantSold {
				t.Fatalf("left %d, in flight %d, sold %d (%v); want %d, %d, %d", left, len(held), sold, err, wantLeft, wantHeld, wantSold)
			}
		}
		books(8, 1, 1)
		if a, _ := g.Reserve(ctx, saleID, "paid", 3, base); a != OverLimit {
			t.Fatalf("a user whose order was paid before the open, limit 1: %v", a)
		}
		for i := int64(0); i < 4; i++ {
			if a, _ := g.Reserve(ctx, saleID, fmt.Sprintf("u%d", i), 10+i, base.Add(time.Duration(10+i)*time.Second)); a != Admitted {
				t.Fatalf("reserve %d: %v", i, a)
			}
		}
		books(4, 5, 1)
		for i, want := range []bool{true, false} {
			if ok, err := g.Confirm(ctx, saleID, 10); err != nil || ok != want {
				t.Fatalf("confirm #%d: %v %v, want %v", i+1, ok, err, want)
			}
		}
		if ok, _ := g.Release(ctx, saleID, 10); ok {
			t.Fatal("a sold unit was released")
		}
		if ok, _ := g.Confirm(ctx, saleID, 99); ok {
			t.Fatal("an order never reserved was confirmed")
		}
		books(4, 4, 2)
		if a, _ := g.Reserve(ctx, saleID, "u0", 20, base); a != OverLimit {
			t.Fatalf("u0's unit is sold and counts toward the limit: %v", a)
		}
		stale, err := g.Stale(ctx, saleID, base.Add(12*time.Second), 100)
		if err != nil || len(stale) != 2 || stale[2].UserID != "waiting" || stale[11].UserID != "u1" {
			t.Fatalf("stale before +12s: %v %v; want orders 2 and 11", stale, err)
		}
		if stale, _ := g.Stale(ctx, saleID, base.Add(time.Hour), 2); len(stale) != 2 || stale[2].UserID == "" || stale[11].UserID == "" {
			t.Fatalf("the 2 oldest: %v; want orders 2 and 11", stale)
		}
		if stale, _ := g.Stale(ctx, saleID, base, 100); len(stale) != 0 {
			t.Fatalf("nothing is older than the first hold: %v", stale)
		}
	})
}

// A batch is answered as if its reservations came one by one: the same
// order twice, a user reaching the limit within the batch, stock running
// out mid-batch. And batches racing each other never oversell.
func TestGateBatchesAnswerInTurn(t *testing.T) {
	gates(t, func(t *testing.T, g Gate) {
		ctx := context.Background()
		saleID := time.Now().UnixNano()
		now := time.UnixMilli(time.Now().UnixMilli())
		r := func(user string, order int64) Reservation { return Reservation{UserID: user, OrderID: order, At: now} }
		if a, err := g.ReserveBatch(ctx, saleID, []Reservation{r("a", 1), r("b", 2)}); err != nil || a[0] != NotOpen || a[1] != NotOpen {
			t.Fatalf("an unknown sale: %v %v", a, err)
		}
		if err := g.Open(ctx, saleID, 4, 2, nil); err != nil {
			t.Fatal(err)
		}
		got, err := g.ReserveBatch(ctx, saleID, []Reservation{
			r("a", 1), r("a", 1), r("a", 2), r("a", 3), r("b", 4), r("c", 5), r("d", 6), r("e", 7)})
		if err != nil {
			t.Fatal(err)
		}
		want := []Admission{Admitted, Admitted, Admitted, OverLimit, Admitted, Admitted, SoldOut, SoldOut}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("answers %v, want %v", got, want)
		}
		left, _, _ := g.Units(ctx, saleID)
		held, _ := g.Held(ctx, saleID)
		if left != 0 || len(held) != 4 || held[1].UserID != "a" || held[5].UserID != "c" || !held[5].At.Equal(now) {
			t.Fatalf("left %d, holds %v", left, held)
		}

		// 40 goroutines, batches of 1 to 37 buyers, 3,000 buyers for 100 units.
		race := saleID + 1
		if err := g.Open(ctx, race, 100, 1, nil); err != nil {
			t.Fatal(err)
		}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 40; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 75; {
					n := min(1+(w*7+i)%37, 75-i)
					batch := make([]Reservation, n)
					for j := range batch {
						id := int64(w*75 + i + j + 1)
						batch[j] = r(fmt.Sprintf("u%d", id%2000), id)
					}
					a, err := g.ReserveBatch(ctx, race, batch)
					if err != nil {
						t.Error(err)
						return
					}
					for _, x := range a {
						if x == Admitted {
							admitted.Add(1)
						}
					}
					i += n
				}
			}(w)
		}
		wg.Wait()
		left, _, _ = g.Units(ctx, race)
		if admitted.Load() != 100 || left != 0 {
			t.Fatalf("admitted %d, left %d; want 100 and 0", admitted.Load(), left)
		}
	})
}
