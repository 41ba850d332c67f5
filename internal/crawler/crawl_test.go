package crawler

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/crawler/testweb"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// testWeb serves a synthetic web for one test on its own loopback range.
func testWeb(t *testing.T, cfg testweb.Config, base string) (*testweb.Server, *testweb.DNS) {
	t.Helper()
	w, err := testweb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := testweb.Start(w, testweb.ServeConfig{BaseIP: netip.MustParseAddr(base)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dns, err := srv.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	return srv, dns
}

var ids atomic.Int64

func testEngine(t *testing.T, db *sqldb.DB, dir string, dns *testweb.DNS, base string, opts ...func(*EngineConfig)) *Engine {
	t.Helper()
	blobs, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultEngineConfig()
	cfg.DNSServer = dns.Addr()
	cfg.AllowNets = []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(base), 16)}
	cfg.Fetch = FetchConfig{Timeout: time.Second, MaxBody: 256 << 10}
	for _, o := range opts {
		o(&cfg)
	}
	ids.CompareAndSwap(0, time.Now().UnixNano())
	eng, err := NewEngine(context.Background(), db, blobs, cfg, slog.New(slog.DiscardHandler), func() (int64, error) { return ids.Add(1), nil })
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func openDB(t *testing.T, dir string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// reachable is the ordinary pages (homes and /p/) a polite crawler can
// reach from host0's home in the model: links followed only out of pages
// their host's robots.txt allows.
func reachable(w *testweb.Web) map[string]bool {
	out, visited := map[string]bool{}, map[string]bool{}
	start, _ := Normalize(w.HomeURL(0))
	visited[start] = true
	queue := []string{start}
	out[start] = true
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		host, _ := HostKey(u)
		i, _ := w.HostIndex(host)
		path := u[strings.Index(u, host)+len(host):]
		if !w.Allowed(i, path) {
			delete(out, u) // discovered, never fetched
			continue
		}
		j := -1
		if path != "/" {
			var err error
			if j, err = pageNumber(path); err != nil {
				continue
			}
		}
		for _, l := range w.Links(i, j) {
			n, _ := Normalize(l)
			h, _ := HostKey(n)
			p := n[strings.Index(n, h)+len(h):]
			if (p == "/" || strings.HasPrefix(p, "/p/")) && !out[n] && !visited[n] {
				out[n], visited[n] = true, true
				queue = append(queue, n)
			}
		}
	}
	return out
}

func pageNumber(path string) (int, error) {
	var j int
	_, err := fmt.Sscanf(path, "/p/%d.html", &j)
	return j, err
}

// A whole crawl of the synthetic web: it fetches exactly the pages a
// polite crawler can reach, with no robots, politeness or duplicate
// violation in the web's own log, finds the duplicates, keeps out of the
// trap and of the internal address, and stores bodies and metadata.
func TestCrawlTheSyntheticWeb(t *testing.T) {
	if testing.Short() {
		t.Skip("crawls a synthetic web for a few seconds")
	}
	cfg := testweb.DefaultConfig()
	cfg.Slow = 2 * time.Second
	srv, dns := testWeb(t, cfg, "127.23.0.0")
	// What the hazards page links as internal.test resolves to 127.0.0.1
	// at the web's port: anything that connects there is counted.
	var internalHits atomic.Int64
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", srv.Port())); err == nil {
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				internalHits.Add(1)
				c.Close()
			}
		}()
	} else {
		t.Logf("127.0.0.1:%d is taken; the SSRF count rests on the stats alone", srv.Port())
	}
	dir := t.TempDir()
	eng := testEngine(t, openDB(t, dir), dir, dns, "127.23.0.0")
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id, err := eng.Create(ctx, CrawlConfig{Seeds: []string{srv.Web().HomeURL(0)}, DelayMS: 20, Fetchers: 32, MaxPerPattern: 30})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	rep := srv.Web().Check(srv.Log().Fetches(), testweb.Rules{Delay: 20 * time.Millisecond})
	t.Logf("checker: %s %v", rep, rep.Examples)
	if !rep.OK() {
		t.Fatalf("violations: %s\n%s", rep, strings.Join(rep.Examples, "\n"))
	}
	want := reachable(srv.Web())
	if rep.Pages != len(want) {
		got := map[string]bool{}
		for _, f := range srv.Log().Fetches() {
			got[fmt.Sprintf("%s:%d%s", testweb.HostName(f.Host), srv.Port(), f.Path)] = true
		}
		var missing []string
		for u := range want {
			if !got[strings.TrimPrefix(u, "http://")] {
				missing = append(missing, u)
			}
		}
		t.Errorf("fetched %d ordinary pages, a polite crawler reaches %d; not fetched: %v", rep.Pages, len(want), missing)
	}
	v, err := eng.View(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("crawl: %+v stats %+v", v, *v.Stats)
	if v.State != "done" || v.Queued != 0 || v.Exact < 10 || v.Near < 8 {
		t.Errorf("view %+v", v)
	}
	// The trap: at most MaxPerPattern calendar pages per hazard host.
	calendar := 0
	for _, f := range srv.Log().Fetches() {
		if strings.HasPrefix(f.Path, "/calendar/") {
			calendar++
		}
	}
	if calendar == 0 || calendar > 10*30 {
		t.Errorf("calendar fetches %d (10 hazard hosts, cap 30 each)", calendar)
	}
	s := v.Stats
	if s.Robots == 0 || s.Redirects == 0 || s.Errors["truncated"] < 10 || s.Errors["timeout"] == 0 {
		t.Errorf("stats %+v", s)
	}
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the internal address (127.0.0.1) was contacted %d times", n)
	}
	pages, err := eng.Search(ctx, id, "host3.test page 4", 10)
	if err != nil || len(pages) != 1 || pages[0].Title != "host3.test page 4" || pages[0].BlobKey == "" {
		t.Fatalf("search: %+v %v", pages, err)
	}
}
