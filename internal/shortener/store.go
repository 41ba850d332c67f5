package shortener

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Link is one short link.
type Link struct {
	Code            string
	URL             string
	CreatedAt       time.Time
	ExpiresAt       *time.Time
	DeleteTokenHash string
}

// Expired reports whether the link has expired at now.
func (l *Link) Expired(now time.Time) bool { return l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) }

var errDuplicate = errors.New("shortener: code taken")

// store is the links and click aggregates in the SQL store.
type store struct{ db *sqldb.DB }

func openStore(ctx context.Context, db *sqldb.DB) (*store, error) {
	if err := db.Migrate(ctx, migrations, "shortener"); err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

func msOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

// create inserts l; errDuplicate when the code is taken.
func (s *store) create(ctx context.Context, l *Link) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(
		"INSERT INTO links (code, url, created_at, expires_at, delete_token_hash) VALUES (?, ?, ?, ?, ?)"),
		l.Code, l.URL, l.CreatedAt.UnixMilli(), msOrNil(l.ExpiresAt), l.DeleteTokenHash)
	if sqldb.IsUniqueViolation(err) {
		return errDuplicate
	}
	if err != nil {
		return fmt.Errorf("shortener: insert link: %w", err)
	}
	return nil
}

// get returns the link or (nil, nil) when there is none.
func (s *store) get(ctx context.Context, code string) (*Link, error) {
	var (
		l       Link
		created int64
		expires sql.NullInt64
	)
	err := s.db.QueryRowContext(ctx, s.db.Rebind(
		"SELECT code, url, created_at, expires_at, delete_token_hash FROM links WHERE code = ?"), code).
		Scan(&l.Code, &l.URL, &created, &expires, &l.DeleteTokenHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shortener: get link: %w", err)
	}
	l.CreatedAt = time.UnixMilli(created).UTC()
	if expires.Valid {
		t := time.UnixMilli(expires.Int64).UTC()
		l.ExpiresAt = &t
	}
	return &l, nil
}

// delete removes the link and its statistics; false if there was none.
func (s *store) delete(ctx context.Context, code string) (bool, error) {
	var found bool
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.db.Rebind("DELETE FROM links WHERE code = ?"), code)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		found = n == 1
		_, err = tx.ExecContext(ctx, s.db.Rebind("DELETE FROM link_clicks WHERE code = ?"), code)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("shortener: delete link: %w", err)
	}
	return found, nil
}

// topLink is a link and its clicks counted so far.
type topLink struct {
	Link
	Clicks int64
}

// top returns the n links with the most clicks counted, most first.
func (s *store) top(ctx context.Context, n int) ([]topLink, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(
		"SELECT l.code, l.url, l.created_at, l.expires_at, t.n FROM links l JOIN "+
			"(SELECT code, SUM(clicks) AS n FROM link_clicks GROUP BY code ORDER BY n DESC, code LIMIT ?) t ON t.code = l.code "+
			"ORDER BY t.n DESC, l.code"), n)
	if err != nil {
		return nil, fmt.Errorf("shortener: top links: %w", err)
	}
	defer rows.Close()
	var out []topLink
	for rows.Next() {
		var t topLink
		var created int64
		var expires sql.NullInt64
		if err := rows.Scan(&t.Code, &t.URL, &created, &expires, &t.Clicks); err != nil {
			return nil, fmt.Errorf("shortener: top links: %w", err)
		}
		t.CreatedAt = time.UnixMilli(created).UTC()
		if expires.Valid {
			at := time.UnixMilli(expires.Int64).UTC()
			t.ExpiresAt = &at
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Stats are a link's click statistics.
type Stats struct {
	Clicks       int64            `json:"clicks"`
	ByDay        map[string]int64 `json:"by_day"`
	TopReferrers []Referrer       `json:"top_referrers"`
	ByAgent      map[string]int64 `json:"by_agent"`
}

// Referrer is a referring host and its clicks.
type Referrer struct {
	Host   string `json:"host"`
	Clicks int64  `json:"clicks"`
}

func (s *store) clicks(ctx context.Context, code string) (int64, error) {
	var n sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.db.Rebind("SELECT SUM(clicks) FROM link_clicks WHERE code = ?"), code).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("shortener: count clicks: %w", err)
	}
	return n.Int64, nil
}

func (s *store) stats(ctx context.Context, code string, topN int) (*Stats, error) {
	st := &Stats{ByDay: map[string]int64{}, ByAgent: map[string]int64{}, TopReferrers: []Referrer{}}
	scan := func(q string, each func(name string, n int64)) error {
		rows, err := s.db.QueryContext(ctx, s.db.Rebind(q), code)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				return err
			}
			each(name, n)
		}
		return rows.Err()
	}
	err := scan("SELECT day, SUM(clicks) FROM link_clicks WHERE code = ? GROUP BY day", func(day string, n int64) {
		st.ByDay[day] = n
		st.Clicks += n
	})
	if err == nil {
		err = scan("SELECT agent, SUM(clicks) FROM link_clicks WHERE code = ? GROUP BY agent",
			func(a string, n int64) { st.ByAgent[a] = n })
	}
	if err == nil {
		err = scan(fmt.Sprintf("SELECT referrer, SUM(clicks) AS n FROM link_clicks WHERE code = ? "+
			"GROUP BY referrer ORDER BY n DESC, referrer LIMIT %d", topN),
			func(h string, n int64) { st.TopReferrers = append(st.TopReferrers, Referrer{Host: h, Clicks: n}) })
	}
	if err != nil {
		return nil, fmt.Errorf("shortener: stats: %w", err)
	}
	return st, nil
}

// applyBatches counts the click batches whose ids have not been counted yet,
// all in one transaction, and returns how many clicks it counted and how
// many batches it skipped. A batch id seen before is a redelivery.
func (s *store) applyBatches(ctx context.Context, batches []ClickBatch, now time.Time) (counted int64, skipped int, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		counted, skipped = 0, 0
		ids := make([]any, len(batches))
		for i, b := range batches {
			ids[i] = b.ID
		}
		seen := map[string]bool{}
		rows, err := tx.QueryContext(ctx, s.db.Rebind(
			"SELECT id FROM click_batches WHERE id IN ("+placeholders(len(ids))+")"), ids...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			seen[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		counts := map[ClickKey]int64{}
		var fresh [][]any
		for _, b := range batches {
			if seen[b.ID] {
				skipped++
				continue
			}
			seen[b.ID] = true // the same batch twice in one flush
			fresh = append(fresh, []any{b.ID, now.UnixMilli()})
			for _, c := range b.Counts {
				if !validCount(c) {
					continue // not from our publisher; never let it fail the batch
				}
				counts[c.ClickKey] += c.N
				counted += c.N
			}
		}
		if len(fresh) == 0 {
			return nil
		}
		// A concurrent consumer that raced us on a redelivered batch makes
		// this insert fail on the primary key, which rolls everything back.
		if err := s.insertRows(ctx, tx, "INSERT INTO click_batches (id, processed_at) VALUES", 2, fresh, ""); err != nil {
			return err
		}
		return s.upsertCounts(ctx, tx, counts)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("shortener: count clicks: %w", err)
	}
	return counted, skipped, nil
}

// validCount keeps a hand-crafted or corrupted message from failing the
// whole transaction on a column limit (which would redeliver it forever).
func validCount(c ClickCount) bool {
	return c.N > 0 && plausibleCode(c.Code) && len(c.Day) == 10 &&
		len(c.Referrer) <= 255 && c.Referrer != "" && len(c.Agent) <= 32 && c.Agent != ""
}

// upsertCounts adds counts to link_clicks, 500 rows a statement.
func (s *store) upsertCounts(ctx context.Context, tx *sql.Tx, counts map[ClickKey]int64) error {
	keys := make([]ClickKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	// A stable order makes concurrent consumers lock rows in the same order
	// (no deadlocks between two transactions upserting the same rows).
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Referrer != b.Referrer {
			return a.Referrer < b.Referrer
		}
		return a.Agent < b.Agent
	})
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = []any{k.Code, k.Day, k.Referrer, k.Agent, counts[k]}
	}
	suffix := " ON CONFLICT (code, day, referrer, agent) DO UPDATE SET clicks = link_clicks.clicks + excluded.clicks"
	if s.db.Dialect == sqldb.MySQL {
		suffix = " ON DUPLICATE KEY UPDATE clicks = clicks + VALUES(clicks)"
	}
	return s.insertRows(ctx, tx, "INSERT INTO link_clicks (code, day, referrer, agent, clicks) VALUES", 5, rows, suffix)
}

// insertRows runs a multi-row INSERT in chunks of 500 rows, pausing after
// each chunk but the last for as long as the chunk took: background
// work then uses at most about half a core in bursts, instead of a whole
// core for tens of milliseconds, which is what redirects queued behind.
func (s *store) insertRows(ctx context.Context, tx *sql.Tx, head string, width int, rows [][]any, suffix string) error {
	const chunk = 500
	row := "(" + placeholders(width) + ")"
	for start := 0; start < len(rows); start += chunk {
		end := min(start+chunk, len(rows))
		var b strings.Builder
		b.WriteString(head)
		args := make([]any, 0, (end-start)*width)
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			b.WriteString(row)
			args = append(args, rows[i]...)
		}
		b.WriteString(suffix)
		began := time.Now()
		if _, err := tx.ExecContext(ctx, s.db.Rebind(b.String()), args...); err != nil {
			return err
		}
		if end < len(rows) && !resilience.Sleep(ctx, time.Since(began)) {
			return ctx.Err()
		}
	}
	return nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// pruneBatches forgets counted batch ids older than the redelivery horizon.
func (s *store) pruneBatches(ctx context.Context, before time.Time) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind("DELETE FROM click_batches WHERE processed_at < ?"), before.UnixMilli())
	return err
}
