package crawler

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

type store struct {
	db    *sqldb.DB
	group groupCommit
}

func openStore(ctx context.Context, db *sqldb.DB) (*store, error) {
	if err := db.Migrate(ctx, migrations, "crawler"); err != nil {
		return nil, err
	}
	s := &store{db: db}
	if err := s.initShards(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) q(query string) string { return s.db.Rebind(query) }

// URLHash is a normalised URL's key: the first 8 bytes of its SHA-256
// (two URLs of one crawl collide with odds of n²/2⁶⁵: one in 10⁸ for a
// billion-page crawl's worth of a million URLs).
func URLHash(u string) int64 {
	sum := sha256.Sum256([]byte(u))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// URLRow is a discovered URL as the store keeps it.
type URLRow struct {
	Hash      int64
	URL       string
	Host      string
	Depth     int
	Priority  int
	Redirects int
	// LoadedBy is the instance whose frontier takes the URL when it is
	// recorded: the recorder when it holds the host's shard, else "" (the
	// shard's owner takes it from the store).
	LoadedBy string
}

func (s *store) createCrawl(ctx context.Context, id int64, config string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q("INSERT INTO crawler_crawls (crawl_id, config, state, created_at, updated_at) VALUES (?, ?, 'running', ?, ?)"),
		id, config, now.UnixMilli(), now.UnixMilli())
	return err
}

type crawlRow struct {
	ID        int64
	Config    string
	State     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (s *store) crawls(ctx context.Context, where string, args ...any) ([]crawlRow, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT crawl_id, config, state, created_at, updated_at FROM crawler_crawls "+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []crawlRow
	for rows.Next() {
		var c crawlRow
		var created, updated int64
		if err := rows.Scan(&c.ID, &c.Config, &c.State, &created, &updated); err != nil {
			return nil, err
		}
		c.CreatedAt, c.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *store) crawl(ctx context.Context, id int64) (crawlRow, error) {
	cs, err := s.crawls(ctx, "WHERE crawl_id = ?", id)
	if err != nil {
		return crawlRow{}, err
	}
	if len(cs) == 0 {
		return crawlRow{}, apperr.E(apperr.NotFound, "no crawl %d", id)
	}
	return cs[0], nil
}

func (s *store) setState(ctx context.Context, id int64, state string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_crawls SET state = ?, updated_at = ? WHERE crawl_id = ?"), state, now.UnixMilli(), id)
	return err
}

// known returns which of hashes the crawl has seen (the Bloom filter's
// "maybe" answers, settled).
func (s *store) known(ctx context.Context, crawlID int64, hashes []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(hashes) == 0 {
		return out, nil
	}
	args := []any{crawlID}
	for _, h := range hashes {
		args = append(args, h)
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT url_hash FROM crawler_urls WHERE crawl_id = ? AND url_hash IN (?"+strings.Repeat(", ?", len(hashes)-1)+")"), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out[h] = true
	}
	return out, rows.Err()
}

// addURLs inserts URLs not seen yet and returns the hashes it inserted:
// one statement, duplicates skipped by the primary key (so two crawlers
// discovering one URL at once insert it once, and only the one that did
// queues it).
func (s *store) addURLs(ctx context.Context, tx *sql.Tx, crawlID int64, urls []URLRow, now time.Time) (map[int64]bool, error) {
	inserted := map[int64]bool{}
	if len(urls) == 0 {
		return inserted, nil
	}
	var b strings.Builder
	if s.db.Dialect == sqldb.MySQL {
		b.WriteString("INSERT IGNORE")
	} else {
		b.WriteString("INSERT")
	}
	b.WriteString(" INTO crawler_urls (crawl_id, url_hash, url, host, depth, priority, redirects, state, discovered_at, shard, loaded_by) VALUES ")
	args := make([]any, 0, 10*len(urls))
	for i, u := range urls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)")
		args = append(args, crawlID, u.Hash, u.URL, u.Host, u.Depth, u.Priority, u.Redirects, now.UnixMilli(), shardOf(u.Host), u.LoadedBy)
	}
	if s.db.Dialect != sqldb.MySQL {
		b.WriteString(" ON CONFLICT (crawl_id, url_hash) DO NOTHING")
	}
	b.WriteString(" RETURNING url_hash")
	rows, err := tx.QueryContext(ctx, s.q(b.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("crawler: add urls: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		inserted[h] = true
	}
	return inserted, rows.Err()
}

// allHashes streams every URL hash of a crawl (to fill the Bloom filter).
func (s *store) allHashes(ctx context.Context, crawlID int64, fn func(int64)) error {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT url_hash FROM crawler_urls WHERE crawl_id = ?"), crawlID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return err
		}
		fn(h)
	}
	return rows.Err()
}

// allExactHashes streams the body hashes of a crawl's pages.
func (s *store) allExactHashes(ctx context.Context, crawlID int64, fn func(string)) error {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT exact_hash FROM crawler_pages WHERE crawl_id = ? AND exact_hash <> ''"), crawlID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return err
		}
		fn(h)
	}
	return rows.Err()
}

// Page is a fetch's record.
type Page struct {
	CrawlID     int64     `json:"crawl_id,string"`
	Hash        int64     `json:"url_hash,string"`
	URL         string    `json:"url"`
	Host        string    `json:"host"`
	Status      int       `json:"status"`
	ContentType string    `json:"content_type,omitempty"`
	Title       string    `json:"title,omitempty"`
	Description string    `json:"description,omitempty"`
	Canonical   string    `json:"canonical,omitempty"`
	Lang        string    `json:"lang,omitempty"`
	Bytes       int64     `json:"bytes"`
	Truncated   bool      `json:"truncated,omitempty"`
	Links       int       `json:"links"`
	ExactHash   string    `json:"exact_hash,omitempty"`
	SimHash     uint64    `json:"simhash,string,omitempty"`
	DupKind     string    `json:"duplicate,omitempty"` // exact, near
	DupOf       int64     `json:"duplicate_of,string,omitempty"`
	BlobKey     string    `json:"blob_key,omitempty"`
	Error       string    `json:"error,omitempty"`
	FetchedAt   time.Time `json:"fetched_at"`
	FetchMS     int       `json:"fetch_ms"`
}

const pageColumns = "crawl_id, url_hash, url, host, status, content_type, title, description, canonical, lang, bytes, truncated, links, exact_hash, simhash, dup_kind, dup_of, blob_key, error, fetched_at, fetch_ms"

// addSeeds queues a crawl's seeds.
func (s *store) addSeeds(ctx context.Context, crawlID int64, urls []URLRow, now time.Time) (inserted map[int64]bool, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		inserted, err = s.addURLs(ctx, tx, crawlID, urls, now)
		return err
	})
	return inserted, err
}

// recordOne stores a page, marks its URL done and queues what it
// discovered, in one transaction: a crash leaves the URL queued and
// nothing of its fetch, so it is fetched again, once. It returns the
// hashes of the discovered URLs that were new.
func (s *store) recordOne(ctx context.Context, p *Page, found []URLRow, now time.Time) (inserted map[int64]bool, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		if inserted, err = s.addURLs(ctx, tx, p.CrawlID, found, now); err != nil {
			return err
		}
		ins := "INSERT"
		if s.db.Dialect == sqldb.MySQL {
			ins = "INSERT IGNORE"
		}
		q := ins + " INTO crawler_pages (" + pageColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
		if s.db.Dialect != sqldb.MySQL {
			q += " ON CONFLICT (crawl_id, url_hash) DO NOTHING"
		}
		if _, err := tx.ExecContext(ctx, s.q(q), pageArgs(p)...); err != nil {
			return fmt.Errorf("crawler: record page: %w", err)
		}
		_, err := tx.ExecContext(ctx, s.q("UPDATE crawler_urls SET state = 'done' WHERE crawl_id = ? AND url_hash = ?"), p.CrawlID, p.Hash)
		return err
	})
	return inserted, err
}

// skip marks a URL as not to be fetched, with the reason.
func (s *store) skip(ctx context.Context, crawlID, hash int64, reason string) error {
	_, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_urls SET state = 'skipped', reason = ? WHERE crawl_id = ? AND url_hash = ?"), clip(reason, 100), crawlID, hash)
	return err
}

func (s *store) pageByExactHash(ctx context.Context, crawlID int64, exact string, not int64) (int64, bool, error) {
	var h int64
	err := s.db.QueryRowContext(ctx, s.q("SELECT url_hash FROM crawler_pages WHERE crawl_id = ? AND exact_hash = ? AND url_hash <> ? AND dup_kind = '' LIMIT 1"), crawlID, exact, not).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return h, err == nil, err
}

// searchPages finds a crawl's pages whose URL or title contains q.
func (s *store) searchPages(ctx context.Context, crawlID int64, q string, limit int) ([]Page, error) {
	like := "%" + strings.NewReplacer("%", "", "_", "").Replace(q) + "%"
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+pageColumns+" FROM crawler_pages WHERE crawl_id = ? AND (url LIKE ? OR title LIKE ?) ORDER BY fetched_at LIMIT ?"), crawlID, like, like, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Page
	for rows.Next() {
		var p Page
		var trunc int
		var sim, fetched int64
		if err := rows.Scan(&p.CrawlID, &p.Hash, &p.URL, &p.Host, &p.Status, &p.ContentType, &p.Title, &p.Description, &p.Canonical, &p.Lang,
			&p.Bytes, &trunc, &p.Links, &p.ExactHash, &sim, &p.DupKind, &p.DupOf, &p.BlobKey, &p.Error, &fetched, &p.FetchMS); err != nil {
			return nil, err
		}
		p.Truncated, p.SimHash, p.FetchedAt = trunc == 1, uint64(sim), time.UnixMilli(fetched)
		out = append(out, p)
	}
	return out, rows.Err()
}

// counts is a crawl's URLs by state and its pages by kind.
type counts struct {
	Queued, Done, Skipped int
	Pages, Exact, Near    int
}

func (s *store) counts(ctx context.Context, crawlID int64) (counts, error) {
	var c counts
	rows, err := s.db.QueryContext(ctx, s.q("SELECT state, COUNT(*) FROM crawler_urls WHERE crawl_id = ? GROUP BY state"), crawlID)
	if err != nil {
		return c, err
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return c, err
		}
		switch st {
		case "queued":
			c.Queued = n
		case "done":
			c.Done = n
		case "skipped":
			c.Skipped = n
		}
	}
	rows.Close()
	err = s.db.QueryRowContext(ctx, s.q("SELECT COUNT(*), COALESCE(SUM(CASE WHEN dup_kind = 'exact' THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN dup_kind = 'near' THEN 1 ELSE 0 END), 0) FROM crawler_pages WHERE crawl_id = ?"), crawlID).
		Scan(&c.Pages, &c.Exact, &c.Near)
	return c, err
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 { // not in the middle of a rune
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

// robotsFile is a host's robots.txt as fetched.
type robotsFile struct {
	Status    int
	Body      []byte
	FetchedAt time.Time
}

// maxRobotsBytes is what is kept of a robots.txt (Google reads 500 KiB).
const maxRobotsBytes = 500 << 10

func (s *store) putRobots(ctx context.Context, host string, f robotsFile) error {
	body := f.Body
	if len(body) > maxRobotsBytes {
		body = body[:maxRobotsBytes]
	}
	var q string
	switch s.db.Dialect {
	case sqldb.MySQL:
		q = "INSERT INTO crawler_robots (host, status, body, fetched_at) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE status = VALUES(status), body = VALUES(body), fetched_at = VALUES(fetched_at)"
	default:
		q = "INSERT INTO crawler_robots (host, status, body, fetched_at) VALUES (?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET status = excluded.status, body = excluded.body, fetched_at = excluded.fetched_at"
	}
	_, err := s.db.ExecContext(ctx, s.q(q), host, f.Status, strings.ToValidUTF8(string(body), ""), f.FetchedAt.UnixMilli())
	return err
}

func (s *store) robots(ctx context.Context, host string) (robotsFile, bool, error) {
	var f robotsFile
	var body string
	var at int64
	err := s.db.QueryRowContext(ctx, s.q("SELECT status, body, fetched_at FROM crawler_robots WHERE host = ?"), host).Scan(&f.Status, &body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return f, false, nil
	}
	if err != nil {
		return f, false, err
	}
	f.Body, f.FetchedAt = []byte(body), time.UnixMilli(at)
	return f, true, nil
}
