package crawler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/crawler/testweb"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// Two instances share one crawl through PostgreSQL: the second joins
// mid-crawl, so shards move from the first to it while both fetch. The
// web's log shows no robots, politeness or duplicate violation, every
// reachable page fetched once, and both instances did part of the work.
func TestTwoInstancesShareACrawl(t *testing.T) {
	if testing.Short() {
		t.Skip("crawls a synthetic web with two instances")
	}
	url := testsvc.Postgres(t)
	cfg := testweb.DefaultConfig()
	cfg.Slow = 2 * time.Second
	srv, dns := testWeb(t, cfg, "127.26.0.0")
	lease := func(name string) func(*EngineConfig) {
		return func(c *EngineConfig) { c.Instance, c.Lease = name, 4*time.Second }
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	a := testEngine(t, testsvc.OpenDB(t, url), dirA, dns, "127.26.0.0", lease("a"))
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	id, err := a.Create(ctx, CrawlConfig{Seeds: []string{srv.Web().HomeURL(0)}, DelayMS: 20, Fetchers: 32, MaxPerPattern: 30})
	if err != nil {
		t.Fatal(err)
	}
	testsvc.WaitUntil(t, "150 pages stored by a alone", 60*time.Second, func() bool {
		v, err := a.View(ctx, id, false)
		return err == nil && v.Pages >= 150
	})
	b := testEngine(t, testsvc.OpenDB(t, url), dirB, dns, "127.26.0.0", lease("b"))
	defer b.Close()
	testsvc.WaitUntil(t, "b to hold shards and run the crawl", 20*time.Second, func() bool {
		_, err := b.get(id)
		return err == nil && len(b.heldShards()) > 0
	})
	if err := a.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	testsvc.WaitUntil(t, "b to see the crawl done", 10*time.Second, func() bool {
		v, err := b.View(ctx, id, false)
		return err == nil && v.Stats != nil && v.Stats.State == "done"
	})
	rep := srv.Web().Check(srv.Log().Fetches(), testweb.Rules{Delay: 20 * time.Millisecond})
	t.Logf("checker: %s %v", rep, rep.Examples)
	if !rep.OK() {
		t.Fatalf("violations with two instances: %s\n%s", rep, strings.Join(rep.Examples, "\n"))
	}
	if want := reachable(srv.Web()); rep.Pages != len(want) {
		t.Fatalf("fetched %d ordinary pages, a polite crawler reaches %d; not fetched: %s", rep.Pages, len(want), missing(ctx, srv, a, id, want))
	}
	va, _ := a.View(ctx, id, false)
	vb, _ := b.View(ctx, id, false)
	t.Logf("a fetched %d, b %d; shards a %d, b %d", va.Stats.Fetched, vb.Stats.Fetched, len(a.heldShards()), len(b.heldShards()))
	if vb.Stats.Fetched < 50 || va.Stats.Fetched < 150 {
		t.Fatalf("the work was not shared: a fetched %d, b %d", va.Stats.Fetched, vb.Stats.Fetched)
	}
	if na, nb := len(a.heldShards()), len(b.heldShards()); na+nb != numShards || na < numShards/5 || nb < numShards/5 {
		t.Fatalf("shards a %d, b %d of %d", na, nb, numShards)
	}
	if va.Queued != 0 || va.Pages != va.Done {
		t.Fatalf("after the crawl: %+v", va)
	}
}

// Two crawler processes share a crawl; one is killed with SIGKILL. Its
// leases run out, the survivor takes its shards and the URLs it had
// queued, and finishes the crawl: no robots or politeness violation
// across the kill, a page fetched twice only if it was in flight at the
// kill, every reachable page fetched.
func TestTwoCrawlerProcessesOneKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two crawler processes")
	}
	url := testsvc.Postgres(t)
	cfg := testweb.DefaultConfig()
	cfg.Hosts, cfg.Slow = 60, 2*time.Second
	srv, dns := testWeb(t, cfg, "127.27.0.0")
	const token = "crawler-test-token-0123456789abcdef"
	start := func(name string) *proctest.Process {
		return proctest.Start(t, proctest.FreeAddr(t), "crawler", "serve", "--data", t.TempDir(), "--db", url, "--admin-token", token,
			"--dns-server", dns.Addr(), "--allow-net", "127.27.0.0/16", "--fetch-timeout", "1s", "--lease", "4s", "--instance", name)
	}
	p1, p2 := start("p1"), start("p2")
	id := createOverHTTP(t, p1.URL(), token, CrawlConfig{Seeds: []string{srv.Web().HomeURL(0)}, DelayMS: 20, Fetchers: 16, MaxPerPattern: 30})
	view := func(p *proctest.Process) CrawlView { return viewOverHTTP(p.URL(), id) }
	testsvc.WaitUntil(t, "both processes fetching, 300 pages stored", 60*time.Second, func() bool {
		v2 := view(p2)
		return v2.Stats != nil && v2.Stats.Fetched > 20 && v2.Pages >= 300
	})
	p2.Kill()
	testsvc.WaitUntil(t, "the survivor to finish the crawl", 90*time.Second, func() bool { return view(p1).State == "done" })
	rep := srv.Web().Check(srv.Log().Fetches(), testweb.Rules{Delay: 20 * time.Millisecond})
	t.Logf("checker: %s %v", rep, rep.Examples)
	if rep.Robots != 0 || rep.Politeness != 0 {
		t.Fatalf("violations across the kill: %s\n%s", rep, strings.Join(rep.Examples, "\n"))
	}
	if rep.Duplicates > 16 {
		t.Fatalf("%d duplicate fetches; at most the 16 in flight at the kill: %v", rep.Duplicates, rep.Examples)
	}
	if want := reachable(srv.Web()); rep.Pages != len(want) {
		t.Fatalf("fetched %d ordinary pages, a polite crawler reaches %d", rep.Pages, len(want))
	}
	if v := view(p1); v.Queued != 0 || v.Pages != v.Done {
		t.Fatalf("after the crawl: %+v", v)
	}
}

// missing lists the reachable pages the web did not serve, with what the
// store says of each.
func missing(ctx context.Context, srv *testweb.Server, e *Engine, id int64, want map[string]bool) string {
	got := map[string]bool{}
	for _, f := range srv.Log().Fetches() {
		got[fmt.Sprintf("http://%s:%d%s", testweb.HostName(f.Host), srv.Port(), f.Path)] = true
	}
	var out []string
	for u := range want {
		if got[u] {
			continue
		}
		var state, reason, loadedBy string
		var shard int
		err := e.store.db.QueryRowContext(ctx, e.store.q("SELECT state, reason, loaded_by, shard FROM crawler_urls WHERE crawl_id = ? AND url_hash = ?"), id, URLHash(u)).
			Scan(&state, &reason, &loadedBy, &shard)
		out = append(out, fmt.Sprintf("%s (state %q reason %q loaded_by %q shard %d err %v)", u, state, reason, loadedBy, shard, err))
	}
	return strings.Join(out, "; ")
}
