package crawler

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// The store's side of several instances sharing crawls: heartbeats, shard
// leases, and which instance's frontier holds each queued URL.

// initShards writes the shard table's rows once, and gives URLs recorded
// before sharding their shard.
func (s *store) initShards(ctx context.Context) error {
	var b strings.Builder
	if s.db.Dialect == sqldb.MySQL {
		b.WriteString("INSERT IGNORE")
	} else {
		b.WriteString("INSERT")
	}
	b.WriteString(" INTO crawler_shards (shard, owner, lease_until) VALUES ")
	for i := range numShards {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%d, '', 0)", i)
	}
	if s.db.Dialect != sqldb.MySQL {
		b.WriteString(" ON CONFLICT (shard) DO NOTHING")
	}
	if _, err := s.db.ExecContext(ctx, b.String()); err != nil {
		return fmt.Errorf("crawler: shard table: %w", err)
	}
	for {
		rows, err := s.db.QueryContext(ctx, s.q("SELECT crawl_id, url_hash, host FROM crawler_urls WHERE shard = -1 LIMIT 1000"))
		if err != nil {
			return err
		}
		type key struct{ crawl, hash int64 }
		todo := map[key]string{}
		for rows.Next() {
			var k key
			var host string
			if err := rows.Scan(&k.crawl, &k.hash, &host); err != nil {
				rows.Close()
				return err
			}
			todo[k] = host
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(todo) == 0 {
			return nil
		}
		for k, host := range todo {
			if _, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_urls SET shard = ? WHERE crawl_id = ? AND url_hash = ?"), shardOf(host), k.crawl, k.hash); err != nil {
				return err
			}
		}
	}
}

// heartbeat records that an instance is alive now.
func (s *store) heartbeat(ctx context.Context, instance string, started, now time.Time) error {
	var q string
	switch s.db.Dialect {
	case sqldb.MySQL:
		q = "INSERT INTO crawler_members (instance, started_at, heartbeat_at) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE heartbeat_at = VALUES(heartbeat_at)"
	default:
		q = "INSERT INTO crawler_members (instance, started_at, heartbeat_at) VALUES (?, ?, ?) ON CONFLICT (instance) DO UPDATE SET heartbeat_at = excluded.heartbeat_at"
	}
	_, err := s.db.ExecContext(ctx, s.q(q), instance, started.UnixMilli(), now.UnixMilli())
	return err
}

// Member is a crawler instance as the store knows it.
type Member struct {
	Instance  string    `json:"instance"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	Shards    int       `json:"shards"` // leases held and unexpired
}

// members is the instances whose heartbeat is after since, with the
// leases each holds at now.
func (s *store) members(ctx context.Context, since, now time.Time) ([]Member, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT m.instance, m.started_at, m.heartbeat_at,
		(SELECT COUNT(*) FROM crawler_shards sh WHERE sh.owner = m.instance AND sh.lease_until > ?)
		FROM crawler_members m WHERE m.heartbeat_at > ? ORDER BY m.instance`), now.UnixMilli(), since.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var started, beat int64
		if err := rows.Scan(&m.Instance, &started, &beat, &m.Shards); err != nil {
			return nil, err
		}
		m.Started, m.Heartbeat = time.UnixMilli(started), time.UnixMilli(beat)
		out = append(out, m)
	}
	return out, rows.Err()
}

// leave removes an instance that is shutting down: its leases are freed
// (its fetches have ended) and it is no longer a member.
func (s *store) leave(ctx context.Context, instance string) error {
	if _, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_shards SET owner = '', lease_until = 0 WHERE owner = ?"), instance); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, s.q("DELETE FROM crawler_members WHERE instance = ?"), instance)
	return err
}

// forgetMembers deletes the rows of instances silent since before.
func (s *store) forgetMembers(ctx context.Context, before time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q("DELETE FROM crawler_members WHERE heartbeat_at < ?"), before.UnixMilli())
	return err
}

// acquire takes the leases of those of shards that are free, expired or
// already held by instance, and returns the ones it holds.
func (s *store) acquire(ctx context.Context, instance string, shards []int, until, now time.Time) ([]int, error) {
	if len(shards) == 0 {
		return nil, nil
	}
	in := "?" + strings.Repeat(", ?", len(shards)-1)
	args := []any{instance, until.UnixMilli(), instance, now.UnixMilli()}
	for _, sh := range shards {
		args = append(args, sh)
	}
	if _, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_shards SET owner = ?, lease_until = ? WHERE (owner = '' OR owner = ? OR lease_until < ?) AND shard IN ("+in+")"), args...); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT shard FROM crawler_shards WHERE owner = ? AND lease_until = ? AND shard IN ("+in+") ORDER BY shard"), append([]any{instance, until.UnixMilli()}, args[4:]...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var sh int
		if err := rows.Scan(&sh); err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	return out, rows.Err()
}

// renew extends every lease an instance holds and returns the shards it
// still holds.
func (s *store) renew(ctx context.Context, instance string, until time.Time) (map[int]bool, error) {
	if _, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_shards SET lease_until = ? WHERE owner = ?"), until.UnixMilli(), instance); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT shard FROM crawler_shards WHERE owner = ?"), instance)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	held := map[int]bool{}
	for rows.Next() {
		var sh int
		if err := rows.Scan(&sh); err != nil {
			return nil, err
		}
		held[sh] = true
	}
	return held, rows.Err()
}

// release gives shards back (their hosts' fetches here have ended).
func (s *store) release(ctx context.Context, instance string, shards []int) error {
	if len(shards) == 0 {
		return nil
	}
	args := []any{instance}
	for _, sh := range shards {
		args = append(args, sh)
	}
	_, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_shards SET owner = '', lease_until = 0 WHERE owner = ? AND shard IN (?"+strings.Repeat(", ?", len(shards)-1)+")"), args...)
	return err
}

// shardRow is a URL of a shard as loading a shard needs it: queued ones
// go to the frontier; every one that was admitted counts against its
// host's and its pattern's caps.
type shardRow struct {
	URLRow
	State  string
	Reason string
}

// loadShards reads every URL of a crawl in the given shards and marks the
// queued ones as held by instance; when unloadedOnly, only queued URLs no
// frontier holds yet (” loaded_by), or when sweep, queued URLs held by
// another instance (left behind by one whose lease ran out).
func (s *store) loadShards(ctx context.Context, crawlID int64, shards []int, instance string, mode loadMode) ([]shardRow, error) {
	if len(shards) == 0 {
		return nil, nil
	}
	args := []any{crawlID}
	where := "crawl_id = ?"
	switch mode {
	case loadAll:
	case loadUnloaded:
		where += " AND loaded_by = '' AND state = 'queued'"
	case loadStray:
		where += " AND state = 'queued' AND loaded_by <> '' AND loaded_by <> ?"
		args = append(args, instance)
	}
	ph := make([]string, len(shards))
	for i, sh := range shards {
		ph[i] = "?"
		args = append(args, sh)
	}
	where += " AND shard IN (" + strings.Join(ph, ", ") + ")"
	rows, err := s.db.QueryContext(ctx, s.q("SELECT url_hash, url, host, depth, priority, redirects, state, reason FROM crawler_urls WHERE "+where+" ORDER BY discovered_at, url_hash"), args...)
	if err != nil {
		return nil, err
	}
	var out []shardRow
	var queued []int64
	for rows.Next() {
		var r shardRow
		if err := rows.Scan(&r.Hash, &r.URL, &r.Host, &r.Depth, &r.Priority, &r.Redirects, &r.State, &r.Reason); err != nil {
			rows.Close()
			return nil, err
		}
		if r.State == "queued" {
			queued = append(queued, r.Hash)
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for len(queued) > 0 {
		n := min(len(queued), 500)
		args := []any{instance, crawlID}
		for _, h := range queued[:n] {
			args = append(args, h)
		}
		if _, err := s.db.ExecContext(ctx, s.q("UPDATE crawler_urls SET loaded_by = ? WHERE crawl_id = ? AND url_hash IN (?"+strings.Repeat(", ?", n-1)+")"), args...); err != nil {
			return nil, err
		}
		queued = queued[n:]
	}
	return out, nil
}

type loadMode int

const (
	loadAll      loadMode = iota // a shard just acquired: everything, to rebuild its caps
	loadUnloaded                 // URLs others recorded for shards held here
	loadStray                    // URLs a stalled former owner recorded as its own
)

// anyQueued reports whether a crawl has a URL waiting for a fetch
// anywhere (in any instance's frontier, or in flight).
func (s *store) anyQueued(ctx context.Context, crawlID int64) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.q("SELECT 1 FROM crawler_urls WHERE crawl_id = ? AND state = 'queued' LIMIT 1"), crawlID).Scan(&one)
	if err == sql.ErrNoRows {
		return false, nil
	}
	return err == nil, err
}

// pageCount is the pages a crawl has stored, by every instance.
func (s *store) pageCount(ctx context.Context, crawlID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q("SELECT COUNT(*) FROM crawler_pages WHERE crawl_id = ?"), crawlID).Scan(&n)
	return n, err
}
