package shop

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// BenchmarkSearch measures the search index on a large catalog:
// SCALELAB_SEARCH_PRODUCTS products (default 1,000,000) with names drawn
// from a Zipf-distributed vocabulary of 5,000 words, 50 categories. The
// SQLite file is kept in the temp directory between runs (seeding 1M takes
// a minute); SCALELAB_SEARCH_DB=postgres://… or mysql://… seeds a real
// engine instead. bench/shop-search.sh runs it on all three.
func BenchmarkSearch(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("SCALELAB_SEARCH_PRODUCTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	url := os.Getenv("SCALELAB_SEARCH_DB")
	if url == "" {
		url = "sqlite://" + filepath.Join(os.TempDir(), fmt.Sprintf("scalelab-search-%d.db", n))
	}
	ctx := context.Background()
	db, err := sqldb.Open(ctx, url, "")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st, err := openStore(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM shop_products`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	vocab := vocabulary()
	if have < n {
		b.Logf("seeding %d products into %s", n-have, db.Where)
		if err := seedCatalog(ctx, st, have, n, vocab); err != nil {
			b.Fatal(err)
		}
	}
	var maxID int64
	if err := db.QueryRowContext(ctx, `SELECT MAX(product_id) FROM shop_products`).Scan(&maxID); err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct {
		name string
		f    Search
	}{
		{"newest", Search{}},
		{"deep-cursor", Search{Before: maxID / 2}},
		{"category", Search{Category: "cat-7"}},
		{"common-word", Search{Words: []string{vocab[0]}}},
		{"mid-word", Search{Words: []string{vocab[200]}}},
		{"rare-word", Search{Words: []string{vocab[4000]}}},
		{"two-common-words", Search{Words: []string{vocab[0], vocab[1]}}},
		{"word+category", Search{Words: []string{vocab[3]}, Category: "cat-7"}},
		{"rare-word+category", Search{Words: []string{vocab[4000]}, Category: "cat-7"}},
	} {
		b.Run(q.name, func(b *testing.B) {
			q.f.Limit = 20
			var hits int
			for b.Loop() {
				ps, err := st.search(ctx, q.f)
				if err != nil {
					b.Fatal(err)
				}
				hits = len(ps)
			}
			b.ReportMetric(float64(hits), "hits")
		})
	}
}

// vocabulary is 5,000 pronounceable distinct words, most frequent first.
func vocabulary() []string {
	r := rand.New(rand.NewPCG(42, 42))
	syl := []string{"ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pa", "se", "do", "gu", "ber", "lin", "tor", "mas"}
	seen := map[string]bool{}
	var out []string
	for len(out) < 5000 {
		var w strings.Builder
		for range 2 + r.IntN(3) {
			w.WriteString(syl[r.IntN(len(syl))])
		}
		if s := w.String(); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// seedCatalog inserts products from..n-1 with Snowflake-like increasing
// IDs, 2,000 per transaction, through the same term extraction as the API.
func seedCatalog(ctx context.Context, st *store, from, n int, vocab []string) error {
	r := rand.New(rand.NewPCG(uint64(from), 7))
	zipf := rand.NewZipf(r, 1.1, 1, uint64(len(vocab)-1))
	const batch = 2000
	for start := from; start < n; start += batch {
		end := min(start+batch, n)
		tx, err := st.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		var prows, trows []string
		var pargs, targs []any
		flush := func() error {
			if len(prows) > 0 {
				if _, err := tx.ExecContext(ctx, st.q(`INSERT INTO shop_products (product_id, name, category, price_cents, stock, created_at, updated_at) VALUES `+strings.Join(prows, ",")), pargs...); err != nil {
					return err
				}
			}
			if len(trows) > 0 {
				if _, err := tx.ExecContext(ctx, st.q(`INSERT INTO shop_product_terms (term, product_id) VALUES `+strings.Join(trows, ",")), targs...); err != nil {
					return err
				}
			}
			prows, trows, pargs, targs = prows[:0], trows[:0], pargs[:0], targs[:0]
			return nil
		}
		for i := start; i < end; i++ {
			id := int64(i+1) << 22
			words := make([]string, 3+r.IntN(3))
			for j := range words {
				words[j] = vocab[zipf.Uint64()]
			}
			name, cat := strings.Join(words, " "), "cat-"+strconv.Itoa(r.IntN(50))
			prows = append(prows, "(?, ?, ?, ?, ?, ?, ?)")
			pargs = append(pargs, id, name, cat, 100+r.IntN(10000), 10, 0, 0)
			for _, t := range productTerms(name, cat) {
				trows = append(trows, "(?, ?)")
				targs = append(targs, t, id)
			}
			if len(trows) > 2000 {
				if err := flush(); err != nil {
					tx.Rollback()
					return err
				}
			}
		}
		if err := flush(); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	// Statistics for the planners; on PostgreSQL also the visibility map,
	// without which an index-only scan still visits the heap (autovacuum
	// would set it on a live catalog).
	analyze := "ANALYZE"
	switch st.db.Dialect {
	case sqldb.MySQL:
		analyze = "ANALYZE TABLE shop_products, shop_product_terms"
	case sqldb.Postgres:
		analyze = "VACUUM ANALYZE"
	}
	_, err := st.db.ExecContext(ctx, analyze)
	return err
}
