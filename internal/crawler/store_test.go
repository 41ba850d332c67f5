package crawler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The store's contract on SQLite, PostgreSQL and MariaDB: a URL is
// recorded once however often it is offered, and only its first offer
// reports it new; a fetch's page, links and done-mark land together;
// robots.txt is replaced, not duplicated.
func TestStoreOnEveryEngine(t *testing.T) {
	for _, eng := range testsvc.SQLEngines {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			st := openTestStore(t, eng.URL(t))
			now := time.UnixMilli(time.Now().UnixMilli())
			crawl := now.UnixNano()
			if err := st.createCrawl(ctx, crawl, `{"seeds":["http://a.test/"]}`, now); err != nil {
				t.Fatal(err)
			}
			row := func(u string, depth int) URLRow {
				h, _ := HostKey(u)
				return URLRow{Hash: URLHash(u), URL: u, Host: h, Depth: depth, Priority: priority(u, depth)}
			}
			seed := row("http://a.test/", 0)
			if ins, err := st.addSeeds(ctx, crawl, []URLRow{seed}, now); err != nil || !ins[seed.Hash] {
				t.Fatalf("seed: %v %v", ins, err)
			}
			found := []URLRow{row("http://a.test/", 1), row("http://a.test/x", 1), row("http://b.test/y", 1)}
			p := &Page{CrawlID: crawl, Hash: seed.Hash, URL: seed.URL, Host: seed.Host, Status: 200, Title: "A home, ünïcode",
				Canonical: seed.URL, Bytes: 10, ExactHash: "abc", SimHash: 1<<63 | 5, FetchedAt: now, FetchMS: 3}
			ins, err := st.recordFetch(ctx, p, found, now)
			if err != nil || len(ins) != 2 || ins[seed.Hash] || !ins[found[1].Hash] || !ins[found[2].Hash] {
				t.Fatalf("record: inserted %v, %v", ins, err)
			}
			if ins, err := st.recordFetch(ctx, &Page{CrawlID: crawl, Hash: found[1].Hash, URL: found[1].URL, Host: "a.test", Status: 404, FetchedAt: now},
				[]URLRow{found[2]}, now); err != nil || len(ins) != 0 {
				t.Fatalf("a known URL reported new: %v %v", ins, err)
			}
			known, err := st.known(ctx, crawl, []int64{seed.Hash, found[2].Hash, URLHash("http://never.test/")})
			if err != nil || len(known) != 2 {
				t.Fatalf("known %v %v", known, err)
			}
			all := make([]int, numShards)
			for i := range all {
				all[i] = i
			}
			q, err := st.loadShards(ctx, crawl, all, "me", loadUnloaded)
			if err != nil || len(q) != 1 || q[0].URL != "http://b.test/y" {
				t.Fatalf("queued and held by no instance: %+v %v", q, err)
			}
			if q, err := st.loadShards(ctx, crawl, all, "me", loadUnloaded); err != nil || len(q) != 0 {
				t.Fatalf("a URL loaded twice: %+v %v", q, err)
			}
			if q, err := st.loadShards(ctx, crawl, all, "other", loadStray); err != nil || len(q) != 1 {
				t.Fatalf("another instance does not take back a URL held elsewhere: %+v %v", q, err)
			}
			if q, err := st.loadShards(ctx, crawl, []int{shardOf("a.test")}, "me", loadAll); err != nil || len(q) != 2 || q[0].State != "done" {
				t.Fatalf("a.test's shard holds its two fetched URLs: %+v %v", q, err)
			}
			if err := st.skip(ctx, crawl, found[2].Hash, "robots.txt (rules)"); err != nil {
				t.Fatal(err)
			}
			c, err := st.counts(ctx, crawl)
			if err != nil || c.Done != 2 || c.Skipped != 1 || c.Queued != 0 || c.Pages != 2 {
				t.Fatalf("counts %+v %v", c, err)
			}
			pages, err := st.searchPages(ctx, crawl, "ünïcode", 10)
			if err != nil || len(pages) != 1 || pages[0].SimHash != 1<<63|5 || pages[0].Title != p.Title {
				t.Fatalf("search %+v %v", pages, err)
			}
			if h, ok, err := st.pageByExactHash(ctx, crawl, "abc", 0); err != nil || !ok || h != seed.Hash {
				t.Fatalf("exact %v %v %v", h, ok, err)
			}
			host := fmt.Sprintf("r%d.test", crawl)
			for i, status := range []int{500, 200} {
				if err := st.putRobots(ctx, host, robotsFile{Status: status, Body: []byte("User-agent: *\nDisallow: /x\n"), FetchedAt: now.Add(time.Duration(i) * time.Second)}); err != nil {
					t.Fatal(err)
				}
			}
			f, ok, err := st.robots(ctx, host)
			if err != nil || !ok || f.Status != 200 || !f.FetchedAt.Equal(now.Add(time.Second)) {
				t.Fatalf("robots %+v %v %v", f, ok, err)
			}
		})
	}
}

// Shard leases on every engine: one owner at a time; a lease is taken
// only when free, expired or already held; renewal keeps it; leaving
// frees it at once.
func TestShardLeasesOnEveryEngine(t *testing.T) {
	for _, eng := range testsvc.SQLEngines {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			st := openTestStore(t, eng.URL(t))
			db := st.db
			if _, err := openStore(ctx, db); err != nil { // a second instance on the same tables
				t.Fatal(err)
			}
			t0 := time.UnixMilli(time.Now().UnixMilli())
			a, b := fmt.Sprintf("a-%d", t0.UnixNano()), fmt.Sprintf("b-%d", t0.UnixNano())
			const shard = 7
			_ = st.release(ctx, "whoever", []int{shard})
			if _, err := db.ExecContext(ctx, st.q("UPDATE crawler_shards SET owner = '', lease_until = 0 WHERE shard = ?"), shard); err != nil {
				t.Fatal(err)
			}
			acquire := func(who string, until, now time.Time) bool {
				t.Helper()
				got, err := st.acquire(ctx, who, []int{shard}, until, now)
				if err != nil {
					t.Fatal(err)
				}
				return len(got) == 1 && got[0] == shard
			}
			if !acquire(a, t0.Add(10*time.Second), t0) {
				t.Fatal("a free shard not taken")
			}
			if acquire(b, t0.Add(20*time.Second), t0.Add(5*time.Second)) {
				t.Fatal("b took a's unexpired lease")
			}
			if held, err := st.renew(ctx, a, t0.Add(30*time.Second)); err != nil || !held[shard] {
				t.Fatalf("renew: %v %v", held, err)
			}
			if acquire(b, t0.Add(40*time.Second), t0.Add(20*time.Second)) {
				t.Fatal("b took a's renewed lease")
			}
			if !acquire(b, t0.Add(50*time.Second), t0.Add(31*time.Second)) {
				t.Fatal("b could not take a's expired lease")
			}
			if held, _ := st.renew(ctx, a, t0.Add(60*time.Second)); held[shard] {
				t.Fatal("a still holds a lease b took")
			}
			if err := st.heartbeat(ctx, b, t0, t0.Add(31*time.Second)); err != nil {
				t.Fatal(err)
			}
			ms, err := st.members(ctx, t0.Add(30*time.Second), t0.Add(32*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, m := range ms {
				if m.Instance == b {
					found = m.Shards >= 1
				}
			}
			if !found {
				t.Fatalf("b is not a member holding its shard: %+v", ms)
			}
			if err := st.leave(ctx, b); err != nil {
				t.Fatal(err)
			}
			if !acquire(a, t0.Add(70*time.Second), t0.Add(32*time.Second)) {
				t.Fatal("a shard given back by leaving is not free")
			}
			_ = st.release(ctx, a, []int{shard})
		})
	}
}

// Group commit on every engine: 64 fetches recorded at once, each finding
// links that overlap the others'; every page is stored and marked done,
// and each discovered URL is reported new to exactly one fetch.
func TestGroupCommitOnEveryEngine(t *testing.T) {
	for _, eng := range testsvc.SQLEngines {
		t.Run(eng.Name, func(t *testing.T) {
			ctx := context.Background()
			st := openTestStore(t, eng.URL(t))
			now := time.UnixMilli(time.Now().UnixMilli())
			crawl := now.UnixNano() + 1
			if err := st.createCrawl(ctx, crawl, `{"seeds":["http://a.test/"]}`, now); err != nil {
				t.Fatal(err)
			}
			row := func(u string) URLRow {
				h, _ := HostKey(u)
				return URLRow{Hash: URLHash(u), URL: u, Host: h, Depth: 1, Priority: 1}
			}
			var seeds []URLRow
			for i := range 64 {
				seeds = append(seeds, row(fmt.Sprintf("http://h%d.test/", i)))
			}
			if _, err := st.addSeeds(ctx, crawl, seeds, now); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			newFor := map[int64]int{}
			var wg sync.WaitGroup
			for i, s := range seeds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var found []URLRow
					for j := range 10 {
						found = append(found, row(fmt.Sprintf("http://x.test/%d", (i+j)%40)))
					}
					ins, err := st.recordFetch(ctx, &Page{CrawlID: crawl, Hash: s.Hash, URL: s.URL, Host: s.Host, Status: 200, FetchedAt: now}, found, now)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for h := range ins {
						newFor[h]++
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			if len(newFor) != 40 {
				t.Fatalf("%d URLs reported new, want the 40 distinct ones", len(newFor))
			}
			for h, n := range newFor {
				if n != 1 {
					t.Fatalf("URL %d reported new to %d fetches", h, n)
				}
			}
			c, err := st.counts(ctx, crawl)
			if err != nil || c.Pages != 64 || c.Done != 64 || c.Queued != 40 {
				t.Fatalf("counts %+v %v", c, err)
			}
		})
	}
}

// openTestStore opens the crawler's store on a test's database.
func openTestStore(t *testing.T, url string) *store {
	t.Helper()
	db, err := sqldb.Open(context.Background(), url, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
