package flashsale

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// Settlements in group commits, on SQLite, PostgreSQL and MariaDB: 200
// concurrent settlements of 100 reserved orders — each settled twice, once
// paid and once released, in any order — leave every order settled once,
// with the first outcome's reason, charge and time; a settlement of an
// order already settled changes nothing, and one of an order that does not
// exist fails alone with NotFound. Reads in groups return each order.
func TestSettlementsGroupCommits(t *testing.T) {
	dbs := map[string]func(t testing.TB) string{"sqlite": func(testing.TB) string { return "" }, "postgres": testsvc.Postgres, "mariadb": testsvc.MySQL}
	for name, url := range dbs {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := openStore(ctx, testsvc.OpenDB(t, url(t)))
			if err != nil {
				t.Fatal(err)
			}
			saleID := time.Now().UnixNano()
			created := time.UnixMilli(time.Now().UnixMilli())
			for i := 0; i < 100; i++ {
				o := &Order{ID: saleID + int64(i), SaleID: saleID, UserID: fmt.Sprintf("u%d", i), State: StateReserved, CreatedAt: created, key: fmt.Sprintf("k%d", i)}
				if err := st.recordAdmitted(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			reads, settles := newOrderReads(st), newSettlements(st)
			for i := 0; i < groupRunners; i++ {
				go reads.run(ctx)
				go settles.run(ctx)
			}
			var wg sync.WaitGroup
			got := make([]*Order, 200)
			errs := make([]error, 200)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := saleID + int64(i%100)
					s := settlement{id: id, state: StatePaid, chargeID: fmt.Sprintf("ch-%d", id), at: created.Add(time.Second)}
					if i >= 100 {
						s = settlement{id: id, state: StateReleased, reason: "the payment failed", at: created.Add(2 * time.Second)}
					}
					got[i], errs[i] = settles.do(ctx, s)
				}()
			}
			wg.Wait()
			for i := 0; i < 100; i++ {
				if errs[i] != nil || errs[i+100] != nil {
					t.Fatalf("order %d: %v, %v", i, errs[i], errs[i+100])
				}
				a, b := got[i], got[i+100]
				if a.State != b.State || a.ChargeID != b.ChargeID || a.Reason != b.Reason || a.SettledAt == nil || b.SettledAt == nil || !a.SettledAt.Equal(*b.SettledAt) {
					t.Fatalf("order %d: the two settlements saw %+v and %+v", i, a, b)
				}
				switch {
				case a.State == StatePaid && a.ChargeID == fmt.Sprintf("ch-%d", a.ID) && a.Reason == "" && a.SettledAt.Equal(created.Add(time.Second)):
				case a.State == StateReleased && a.ChargeID == "" && a.Reason == "the payment failed" && a.SettledAt.Equal(created.Add(2*time.Second)):
				default:
					t.Fatalf("order %d settled as %+v", i, a)
				}
			}
			c, _ := st.counts(ctx, saleID)
			if c.Reserved != 0 || c.Paid+c.Released != 100 {
				t.Fatalf("counts %+v", c)
			}
			if again, err := settles.do(ctx, settlement{id: saleID, state: StateReleased, reason: "late", at: time.Now()}); err != nil || again.State != got[0].State || again.Reason == "late" {
				t.Fatalf("a late settlement changed a settled order: %+v %v", again, err)
			}
			if _, err := settles.do(ctx, settlement{id: saleID - 1, state: StatePaid, at: time.Now()}); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("an order that does not exist: %v", err)
			}
			if o, err := reads.do(ctx, saleID+7); err != nil || o.UserID != "u7" {
				t.Fatalf("read: %+v %v", o, err)
			}
		})
	}
}
