package crawler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/crawler/testweb"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// A crawler process killed with SIGKILL mid-crawl and started again on
// the same data resumes the crawl: it fetches no page it had stored, at
// most the ones in flight when it died, and asks no host for robots.txt
// again; the web's log shows no robots or politeness violation across
// the restart, and the crawl ends with every reachable page.
func TestCrawlerKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a crawler process twice")
	}
	cfg := testweb.DefaultConfig()
	cfg.Hosts, cfg.Slow = 60, 2*time.Second
	srv, dns := testWeb(t, cfg, "127.25.0.0")
	const token = "crawler-test-token-0123456789abcdef"
	dir := t.TempDir()
	p := proctest.Start(t, proctest.FreeAddr(t), "crawler", "serve", "--data", dir, "--admin-token", token,
		"--dns-server", dns.Addr(), "--allow-net", "127.25.0.0/16", "--fetch-timeout", "1s", "--lease", "4s")
	id := createOverHTTP(t, p.URL(), token, CrawlConfig{Seeds: []string{srv.Web().HomeURL(0)}, DelayMS: 20, Fetchers: 16, MaxPerPattern: 30})
	view := func() CrawlView { return viewOverHTTP(p.URL(), id) }
	testsvc.WaitUntil(t, "300 pages stored", 60*time.Second, func() bool { return view().Pages >= 300 })
	killedAt := time.Now()
	p.Kill()
	before := srv.Log().Len()
	p.Restart()
	testsvc.WaitUntil(t, "the resumed crawl to finish", 90*time.Second, func() bool { return view().State == "done" })
	rep := srv.Web().Check(srv.Log().Fetches(), testweb.Rules{Delay: 20 * time.Millisecond})
	t.Logf("%d fetches before the kill; checker: %s %v", before, rep, rep.Examples)
	if rep.Robots != 0 || rep.Politeness != 0 {
		t.Fatalf("violations across the restart: %s\n%s", rep, strings.Join(rep.Examples, "\n"))
	}
	// Refetched: only what was in flight at the kill (16 fetchers). A
	// robots.txt is fetched again only if its first fetch ended just before
	// the kill (in flight, or not yet stored): the stored ones are obeyed.
	if rep.Duplicates > 16 {
		t.Fatalf("%d duplicate fetches after the restart: %v", rep.Duplicates, rep.Examples)
	}
	firstRobots := map[int]time.Time{}
	for _, f := range srv.Log().Fetches() {
		if f.Path != "/robots.txt" {
			continue
		}
		first, seen := firstRobots[f.Host]
		if !seen {
			firstRobots[f.Host] = f.End
			continue
		}
		if first.Before(killedAt.Add(-time.Second)) {
			t.Errorf("%s/robots.txt fetched again after the restart; its first fetch ended %v before the kill", testweb.HostName(f.Host), killedAt.Sub(first))
		}
	}
	if want := reachable(srv.Web()); rep.Pages != len(want) {
		t.Fatalf("fetched %d ordinary pages, a polite crawler reaches %d", rep.Pages, len(want))
	}
	if v := view(); v.Queued != 0 || v.Pages != v.Done {
		t.Fatalf("after the crawl: %+v", v)
	}
}

// createOverHTTP starts a crawl through a crawler process's API.
func createOverHTTP(t *testing.T, base, token string, cfg CrawlConfig) int64 {
	t.Helper()
	body, _ := json.Marshal(cfg)
	req, _ := http.NewRequest("POST", base+"/api/v1/crawls", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v CrawlView
	_ = json.NewDecoder(resp.Body).Decode(&v)
	if resp.StatusCode != http.StatusCreated || v.ID == 0 {
		t.Fatalf("create: %d %+v", resp.StatusCode, v)
	}
	return v.ID
}

// viewOverHTTP reads a crawl from a crawler process's API (zero when it
// does not answer).
func viewOverHTTP(base string, id int64) CrawlView {
	var out CrawlView
	if r, err := http.Get(fmt.Sprintf("%s/api/v1/crawls/%d", base, id)); err == nil {
		_ = json.NewDecoder(r.Body).Decode(&out)
		r.Body.Close()
	}
	return out
}
