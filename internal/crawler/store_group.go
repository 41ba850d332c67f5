package crawler

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// Group commit. Every fetch ends in a transaction (its page, its links,
// its done-mark); one transaction each made the store's single writer
// (SQLite's lock, a commit's fsync on every engine) the crawl's limit. So
// fetches that end while a commit runs wait, and the next commit takes
// them all: the first to arrive leads, commits everyone waiting in one
// transaction, hands each its answer, and goes on while more wait. Under
// load a commit carries tens of fetches; alone, a fetch commits at once.

// maxGroup bounds the fetches one transaction carries.
const maxGroup = 128

type groupCommit struct {
	mu      sync.Mutex
	pending []*recordReq
	leading bool
}

type recordReq struct {
	p     *Page
	found []URLRow
	now   time.Time
	done  chan recordRes
}

type recordRes struct {
	inserted map[int64]bool
	err      error
}

// recordFetch stores a page, marks its URL done and queues what it
// discovered, atomically, with the fetches ending at the same time: a
// crash leaves the URL queued and nothing of its fetch, so it is fetched
// again, once. It returns the hashes of the discovered URLs that were
// new (a URL two fetches of one group found is new for the first).
func (s *store) recordFetch(ctx context.Context, p *Page, found []URLRow, now time.Time) (map[int64]bool, error) {
	req := &recordReq{p: p, found: found, now: now, done: make(chan recordRes, 1)}
	g := &s.group
	g.mu.Lock()
	g.pending = append(g.pending, req)
	if !g.leading {
		g.leading = true
		for len(g.pending) > 0 {
			batch := g.pending[:min(len(g.pending), maxGroup)]
			g.pending = g.pending[len(batch):]
			g.mu.Unlock()
			// Not the leader's context: the others' records ride on it.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			s.recordGroup(bctx, batch)
			cancel()
			g.mu.Lock()
		}
		g.leading = false
	}
	g.mu.Unlock()
	r := <-req.done
	return r.inserted, r.err
}

// recordGroup commits a group in one transaction; if that fails, each
// fetch on its own, so that one bad record fails alone.
func (s *store) recordGroup(ctx context.Context, batch []*recordReq) {
	if len(batch) > 1 {
		var results []map[int64]bool
		err := s.db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			results, err = s.recordTx(ctx, tx, batch)
			return err
		})
		if err == nil {
			for i, r := range batch {
				r.done <- recordRes{inserted: results[i]}
			}
			return
		}
	}
	for _, r := range batch {
		ins, err := s.recordOne(ctx, r.p, r.found, r.now)
		r.done <- recordRes{inserted: ins, err: err}
	}
}

func (s *store) recordTx(ctx context.Context, tx *sql.Tx, batch []*recordReq) ([]map[int64]bool, error) {
	type key struct{ crawl, hash int64 }
	owner := map[key]int{} // a discovered URL belongs to the first fetch of the group that found it
	byCrawl := map[int64][]URLRow{}
	for i, r := range batch {
		for _, u := range r.found {
			k := key{r.p.CrawlID, u.Hash}
			if _, dup := owner[k]; dup {
				continue
			}
			owner[k] = i
			byCrawl[r.p.CrawlID] = append(byCrawl[r.p.CrawlID], u)
		}
	}
	results := make([]map[int64]bool, len(batch))
	for i := range results {
		results[i] = map[int64]bool{}
	}
	for crawl, rows := range byCrawl {
		for len(rows) > 0 {
			n := min(len(rows), 500)
			ins, err := s.addURLs(ctx, tx, crawl, rows[:n], batch[0].now)
			if err != nil {
				return nil, err
			}
			for h := range ins {
				results[owner[key{crawl, h}]][h] = true
			}
			rows = rows[n:]
		}
	}
	ins := "INSERT"
	if s.db.Dialect == sqldb.MySQL {
		ins = "INSERT IGNORE"
	}
	const perPage = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	for start := 0; start < len(batch); start += 50 {
		part := batch[start:min(len(batch), start+50)]
		var b strings.Builder
		b.WriteString(ins + " INTO crawler_pages (" + pageColumns + ") VALUES ")
		var args []any
		for i, r := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(perPage)
			args = append(args, pageArgs(r.p)...)
		}
		if s.db.Dialect != sqldb.MySQL {
			b.WriteString(" ON CONFLICT (crawl_id, url_hash) DO NOTHING")
		}
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return nil, fmt.Errorf("crawler: record pages: %w", err)
		}
	}
	done := map[int64][]any{}
	for _, r := range batch {
		done[r.p.CrawlID] = append(done[r.p.CrawlID], r.p.Hash)
	}
	for crawl, hashes := range done {
		args := append([]any{crawl}, hashes...)
		if _, err := tx.ExecContext(ctx, s.q("UPDATE crawler_urls SET state = 'done' WHERE crawl_id = ? AND url_hash IN (?"+strings.Repeat(", ?", len(hashes)-1)+")"), args...); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// pageArgs is a page's values in pageColumns' order.
func pageArgs(p *Page) []any {
	trunc := 0
	if p.Truncated {
		trunc = 1
	}
	return []any{p.CrawlID, p.Hash, p.URL, p.Host, p.Status, clip(p.ContentType, 200), clip(p.Title, 500),
		clip(p.Description, 1000), p.Canonical, clip(p.Lang, 35), p.Bytes, trunc, p.Links, p.ExactHash, int64(p.SimHash), p.DupKind, p.DupOf,
		p.BlobKey, clip(p.Error, 300), p.FetchedAt.UnixMilli(), p.FetchMS}
}
