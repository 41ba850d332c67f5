package flashsale

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// Group commits: 300 concurrent orders, two of which repeat one
// Idempotency-Key, on SQLite and PostgreSQL — the repeat alone fails (as
// a unique violation), every other order and its outbox event is
// written.
func TestRecorderGroupCommits(t *testing.T) {
	for name, url := range map[string]func(t testing.TB) string{"sqlite": func(testing.TB) string { return "" }, "postgres": testsvc.Postgres} {
		t.Run(name, func(t *testing.T) {
			st, err := openStore(context.Background(), testsvc.OpenDB(t, url(t)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := newRecorder(st)
			for i := 0; i < groupRunners; i++ {
				go r.run(ctx)
			}
			saleID := time.Now().UnixNano()
			var wg sync.WaitGroup
			errs := make([]error, 300)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("k%d", i)
					if i == 299 {
						key = "k7" // a repeat of order 7's key
					}
					_, errs[i] = r.do(ctx, &Order{ID: saleID + int64(i), SaleID: saleID, UserID: fmt.Sprintf("u%d", i), State: StateReserved, CreatedAt: time.Now(), key: key})
				}()
			}
			wg.Wait()
			failed := 0
			for i, err := range errs {
				if err != nil {
					failed++
					if !sqldb.IsUniqueViolation(err) || (i != 7 && i != 299) {
						t.Errorf("order %d: %v", i, err)
					}
				}
			}
			c, _ := st.counts(ctx, saleID)
			var outbox int
			_ = st.db.QueryRowContext(ctx, st.q("SELECT COUNT(*) FROM flashsale_outbox WHERE sale_id = ?"), saleID).Scan(&outbox)
			if failed != 1 || c.Reserved != 299 || outbox != 299 {
				t.Fatalf("failed %d, orders %d, outbox %d: want 1, 299, 299", failed, c.Reserved, outbox)
			}
		})
	}
}
