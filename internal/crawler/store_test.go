package crawler

import (
	"context"
	"fmt"
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
			db, err := sqldb.Open(ctx, eng.URL(t), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			st, err := openStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
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
			q, err := st.queued(ctx, crawl, nil)
			if err != nil || len(q) != 1 || q[0].URL != "http://b.test/y" {
				t.Fatalf("queued %+v %v", q, err)
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
