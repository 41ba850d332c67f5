package albums

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func openTestStore(t *testing.T, url string) *store {
	t.Helper()
	st, err := openStore(context.Background(), testsvc.OpenDB(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// reviewsAt makes n reviews issued at time at, alternating like/dislike
// over the given albums.
func reviewsAt(at time.Time, n int, albums ...int64) []Review {
	first := int64(snowflake.FirstID(at, snowflake.DefaultEpoch))
	out := make([]Review, n)
	for i := range out {
		out[i] = Review{ID: first + int64(i), AlbumID: albums[i%len(albums)], Like: i%2 == 0}
	}
	return out
}

func countsOf(t *testing.T, st *store, album int64) (int64, int64) {
	t.Helper()
	l, d, err := st.reviews(context.Background(), album)
	if err != nil {
		t.Fatal(err)
	}
	return l, d
}

// A review is counted once however often it arrives: redelivered as a
// whole batch, twice within a batch, mixed with new ones, or applied by
// two consumers at the same moment (each retrying on failure, as the
// consumer does).
func TestApplyReviewsCountsEachOnce(t *testing.T) {
	for _, eng := range testsvc.SQLEngines {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			st := openTestStore(t, eng.URL(t))
			for _, id := range []int64{1, 2} {
				if err := st.create(ctx, &Album{ID: id, Artist: "A", Title: "T", Year: 2000, ImageKey: "k", ImageType: "image/png"}); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()
			batch := reviewsAt(now, 100, 1, 2)
			if n, err := st.applyReviews(ctx, batch); err != nil || n != 100 {
				t.Fatalf("first delivery: %d, %v", n, err)
			}
			if n, err := st.applyReviews(ctx, batch); err != nil || n != 0 {
				t.Fatalf("redelivery: %d new, %v", n, err)
			}
			// Half old, half new, and every new one twice.
			more := reviewsAt(now.Add(time.Millisecond), 50, 1, 2)
			mixed := append(append(append([]Review{}, batch[50:]...), more...), more...)
			if n, err := st.applyReviews(ctx, mixed); err != nil || n != 50 {
				t.Fatalf("mixed batch: %d new, %v", n, err)
			}
			// Two consumers, the same 200 new reviews, shuffled differently.
			race := reviewsAt(now.Add(2*time.Millisecond), 200, 1, 2)
			var wg sync.WaitGroup
			var mu sync.Mutex
			total := 0
			for c := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mine := append([]Review{}, race...)
					rand.New(rand.NewPCG(uint64(c), 7)).Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
					for attempt := 0; ; attempt++ {
						n, err := st.applyReviews(ctx, mine)
						if err == nil {
							mu.Lock()
							total += n
							mu.Unlock()
							return
						}
						if attempt == 20 {
							t.Errorf("consumer %d: %v", c, err)
							return
						}
						time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
					}
				}()
			}
			wg.Wait()
			if total != 200 {
				t.Fatalf("two consumers applied %d of 200 reviews", total)
			}
			// 350 reviews over two albums, likes on even positions.
			l1, d1 := countsOf(t, st, 1)
			l2, d2 := countsOf(t, st, 2)
			if l1+d1+l2+d2 != 350 {
				t.Fatalf("counted %d+%d+%d+%d reviews, want 350", l1, d1, l2, d2)
			}
		})
	}
}

// Pruning forgets exactly the IDs issued before its bound, in chunks,
// and leaves the counts alone.
func TestPruneAppliedReviews(t *testing.T) {
	for _, eng := range testsvc.SQLEngines {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			st := openTestStore(t, eng.URL(t))
			if err := st.create(ctx, &Album{ID: 1, Artist: "A", Title: "T", Year: 2000, ImageKey: "k", ImageType: "image/png"}); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			old := reviewsAt(now.Add(-8*24*time.Hour), 2500, 1)
			recent := reviewsAt(now.Add(-time.Hour), 300, 1)
			for _, b := range [][]Review{old[:1000], old[1000:2000], old[2000:], recent} {
				if _, err := st.applyReviews(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			bound := int64(snowflake.FirstID(now.Add(-7*24*time.Hour), snowflake.DefaultEpoch))
			n, err := st.pruneApplied(ctx, bound, 700) // 4 chunks of 700 (the last one short)
			if err != nil || n != 2500 {
				t.Fatalf("pruned %d, %v; want 2500", n, err)
			}
			// The recent ones are still recognised, the old ones are gone.
			if n, err := st.applyReviews(ctx, recent); err != nil || n != 0 {
				t.Fatalf("recent reviews after pruning: %d counted again, %v", n, err)
			}
			seen, err := appliedCount(ctx, st)
			if err != nil || seen != 300 {
				t.Fatalf("%d applied IDs remain, %v; want 300", seen, err)
			}
			if l, d := countsOf(t, st, 1); l+d != 2800 {
				t.Fatalf("counts changed by pruning: %d", l+d)
			}
			if n, err := st.pruneApplied(ctx, bound, 700); err != nil || n != 0 {
				t.Fatalf("second prune: %d, %v", n, err)
			}
		})
	}
}

func appliedCount(ctx context.Context, st *store) (n int, err error) {
	err = st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM album_reviews_applied`).Scan(&n)
	return n, err
}

// The consumer's pruning loop runs on its own: an ID older than the window
// disappears within a few rounds, a fresh one stays.
func TestConsumerPrunesOldReviewIDs(t *testing.T) {
	dbURL := testsvc.Postgres(t)
	cfg := testConfig()
	cfg.DedupeWindow, cfg.PruneEvery = time.Hour, 50*time.Millisecond
	start(t, isolated(t, testsvc.NATS(t), dbURL), cfg)

	st := openTestStore(t, dbURL)
	ctx := context.Background()
	old := int64(snowflake.FirstID(time.Now().Add(-2*time.Hour), snowflake.DefaultEpoch))
	fresh := int64(snowflake.FirstID(time.Now(), snowflake.DefaultEpoch))
	if _, err := st.db.ExecContext(ctx, st.db.Rebind(`INSERT INTO album_reviews_applied (review_id) VALUES (?), (?)`), old, fresh); err != nil {
		t.Fatal(err)
	}
	testsvc.WaitUntil(t, "the old ID pruned", 10*time.Second, func() bool {
		n, err := appliedCount(ctx, st)
		return err == nil && n == 1
	})
	var left int64
	if err := st.db.QueryRowContext(ctx, `SELECT review_id FROM album_reviews_applied`).Scan(&left); err != nil || left != fresh {
		t.Fatalf("left %d (%v), want the fresh ID %d", left, err, fresh)
	}
}
