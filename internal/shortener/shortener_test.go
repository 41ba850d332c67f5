package shortener

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The whole API on embedded defaults: SQLite, in-process cache, embedded NATS.
func TestAPIOnEmbeddedDefaults(t *testing.T) {
	cfg := testConfig()
	var ahead atomic.Int64 // how far the service's clock is ahead of the real one
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	inst := startInstance(t, host.Engines{AdminToken: "admin-secret-0123456789"}, cfg, nil)
	base := inst.url

	// Create with a generated code: base62 of a Snowflake ID.
	r := createLink(t, base, `{"url":"https://example.com/page?q=1"}`)
	code := r.str("code")
	id, err := snowflake.DecodeBase62(code)
	if err != nil || id == 0 {
		t.Fatalf("code %q is not base62 of an ID: %v", code, err)
	}
	if r.str("short_url") != base+"/"+code || r.header.Get("Location") != base+"/"+code {
		t.Fatalf("short_url %q, Location %q", r.str("short_url"), r.header.Get("Location"))
	}
	if r.body["expires_at"] != nil {
		t.Fatalf("expires_at %v, want null", r.body["expires_at"])
	}
	token := r.str("delete_token")

	// Redirect: 302 with the exact URL.
	red := do(t, "GET", base+"/"+code, "")
	if red.status != http.StatusFound || red.header.Get("Location") != "https://example.com/page?q=1" {
		t.Fatalf("redirect: %d %q", red.status, red.header.Get("Location"))
	}

	// Alias, conflicts and bad input.
	createLink(t, base, `{"url":"https://example.com/a","alias":"my-alias"}`)
	mustStatus(t, do(t, "POST", base+"/api/v1/links", `{"url":"https://example.com/b","alias":"my-alias"}`), 409, "taken alias")
	mustStatus(t, do(t, "POST", base+"/api/v1/links", `{"url":"https://example.com/b","alias":"MY-ALIAS"}`), 201, "alias differing in case")
	for _, body := range []string{
		`{"url":"ftp://example.com"}`, `{"url":"/relative"}`, `{"url":"` + base + `/x"}`,
		`{"url":"https://example.com/` + strings.Repeat("a", 2100) + `"}`,
		`{"url":"https://example.com","alias":"a"}`, `{"url":"https://example.com","alias":"bad alias"}`,
		`{"url":"https://example.com","expires_in":0}`, `{"url":"https://example.com","expires_in":-5}`,
		`{"url":"https://example.com","unknown":1}`, `{"url":`, ``, `[]`, `{"url":"https://e.com"} {}`,
		`{"url":123}`,
	} {
		mustStatus(t, do(t, "POST", base+"/api/v1/links", body), 400, "create "+body)
	}
	mustStatus(t, do(t, "POST", base+"/api/v1/links", `{"url":"https://e.com/`+strings.Repeat("a", 2<<20)+`"}`), 413, "2 MiB body")

	// Unknown codes: 404, and the second lookup is answered by the negative cache.
	mustStatus(t, do(t, "GET", base+"/NoSuchCode", ""), 404, "unknown code")
	negBefore := counterValue(inst.svc, "negative")
	mustStatus(t, do(t, "GET", base+"/NoSuchCode", ""), 404, "unknown code again")
	if counterValue(inst.svc, "negative") != negBefore+1 {
		t.Fatal("second lookup of an unknown code was not served by the negative cache")
	}
	mustStatus(t, do(t, "GET", base+"/bad.code!", ""), 404, "implausible code")

	// An alias looked up before it exists, then created: the negative entry
	// must not hide it.
	mustStatus(t, do(t, "GET", base+"/later-alias", ""), 404, "alias before creation")
	createLink(t, base, `{"url":"https://example.com/later","alias":"later-alias"}`)
	if r := do(t, "GET", base+"/later-alias", ""); r.status != 302 {
		t.Fatalf("alias after creation: %d", r.status)
	}

	// Expiry: 410 once expired, from the cache as well.
	exp := createLink(t, base, `{"url":"https://example.com/soon","expires_in":1}`)
	if exp.body["expires_at"] == nil {
		t.Fatal("expires_at is null")
	}
	if r := do(t, "GET", base+"/"+exp.str("code"), ""); r.status != 302 {
		t.Fatalf("before expiry: %d", r.status)
	}
	ahead.Store(int64(1100 * time.Millisecond)) // the injected clock passes the expiry: no sleep
	mustStatus(t, do(t, "GET", base+"/"+exp.str("code"), ""), 410, "expired link")
	ahead.Store(0)

	// Clicks reach the stats through the broker within ~2 s.
	for i := 0; i < 5; i++ {
		do(t, "GET", base+"/"+code, "", "Referer", "https://news.example.org/item", "User-Agent", "curl/8.0")
	}
	testsvc.WaitUntil(t, "6 clicks in stats", 5*time.Second, func() bool {
		r := do(t, "GET", base+"/api/v1/links/"+code+"/stats", "")
		return r.status == 200 && r.body["clicks"] == float64(6)
	})
	st := do(t, "GET", base+"/api/v1/links/"+code+"/stats", "")
	refs := st.body["top_referrers"].([]any)
	if top := refs[0].(map[string]any); top["host"] != "news.example.org" || top["clicks"] != float64(5) {
		t.Fatalf("top referrer %v", top)
	}
	day := time.Now().UTC().Format(time.DateOnly)
	if st.body["by_day"].(map[string]any)[day] != float64(6) {
		t.Fatalf("by_day %v", st.body["by_day"])
	}
	if g := do(t, "GET", base+"/api/v1/links/"+code, ""); g.body["clicks"] != float64(6) || g.str("url") != "https://example.com/page?q=1" {
		t.Fatalf("link: %s", g.raw)
	}
	mustStatus(t, do(t, "GET", base+"/api/v1/links/nope123/stats", ""), 404, "stats of unknown link")

	// The most clicked links: the operator's only.
	mustStatus(t, do(t, "GET", base+"/api/v1/links", ""), 401, "top links without the admin token")
	mustStatus(t, do(t, "GET", base+"/api/v1/links?limit=0", "", "Authorization", "Bearer admin-secret-0123456789"), 400, "limit 0")
	mustStatus(t, do(t, "GET", base+"/api/v1/links?limit=x", "", "Authorization", "Bearer admin-secret-0123456789"), 400, "limit x")
	top := do(t, "GET", base+"/api/v1/links?limit=3", "", "Authorization", "Bearer admin-secret-0123456789")
	links, _ := top.body["links"].([]any)
	if top.status != 200 || len(links) != 3 || links[0].(map[string]any)["code"] != code || links[0].(map[string]any)["clicks"] != float64(6) ||
		links[1].(map[string]any)["clicks"].(float64) > 6 || links[2].(map[string]any)["clicks"].(float64) > links[1].(map[string]any)["clicks"].(float64) {
		t.Fatalf("top links: %d %s", top.status, top.raw)
	}

	// Delete: token required and checked; then 404 everywhere.
	mustStatus(t, do(t, "DELETE", base+"/api/v1/links/"+code, ""), 401, "delete without token")
	mustStatus(t, do(t, "DELETE", base+"/api/v1/links/"+code, "", "Authorization", "Bearer wrong"), 403, "delete with wrong token")
	if r := do(t, "DELETE", base+"/api/v1/links/"+code, "", "Authorization", "Bearer "+token); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	mustStatus(t, do(t, "GET", base+"/"+code, ""), 404, "redirect after delete")
	mustStatus(t, do(t, "GET", base+"/api/v1/links/"+code, ""), 404, "get after delete")
	if r := do(t, "DELETE", base+"/api/v1/links/my-alias", "", "X-Delete-Token", "admin-secret-0123456789"); r.status != 204 {
		t.Fatalf("admin delete: %d %s", r.status, r.raw)
	}

	// Operational endpoints and JSON 404/405.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := do(t, "GET", base+p, ""); r.status != 200 {
			t.Fatalf("%s: %d", p, r.status)
		}
	}
	mustStatus(t, do(t, "PUT", base+"/api/v1/links", ""), 405, "PUT links")
	mustStatus(t, do(t, "GET", base+"/a/b/c", ""), 404, "deep unknown path")
}

func TestPermanentRedirect(t *testing.T) {
	cfg := testConfig()
	cfg.Permanent = true
	inst := startInstance(t, host.Engines{}, cfg, nil)
	code := createLink(t, inst.url, `{"url":"https://example.com/p"}`).str("code")
	if r := do(t, "GET", inst.url+"/"+code, ""); r.status != http.StatusMovedPermanently {
		t.Fatalf("status %d", r.status)
	}
}

func TestCreateRateLimit(t *testing.T) {
	cfg := testConfig()
	cfg.CreateLimit = "3/h"
	inst := startInstance(t, host.Engines{}, cfg, nil)
	for i := 0; i < 3; i++ {
		createLink(t, inst.url, `{"url":"https://example.com/`+strconv.Itoa(i)+`"}`)
	}
	r := do(t, "POST", inst.url+"/api/v1/links", `{"url":"https://example.com/4"}`)
	mustStatus(t, r, 429, "4th create")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// Redirects are not limited.
	if r := do(t, "GET", inst.url+"/nothing-here", ""); r.status != 404 {
		t.Fatalf("redirect after limit: %d", r.status)
	}
}

// hangingBroker stands in for a broker whose network has gone silent:
// publishes hang until their deadline. Consuming still works (it was set
// up before the outage).
type hangingBroker struct {
	broker.Broker
	down      atomic.Bool
	publishes atomic.Int64
}

func (b *hangingBroker) Publish(ctx context.Context, topic string, data []byte) error {
	if b.down.Load() {
		b.publishes.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	return b.Broker.Publish(ctx, topic, data)
}

// A broker outage must neither fail nor slow redirects: events go into a
// bounded buffer, and what does not fit is dropped and counted.
func TestBrokerOutageDoesNotReachRedirects(t *testing.T) {
	cfg := testConfig()
	cfg.ClickBuffer = 100
	var hb *hangingBroker
	inst := startInstance(t, host.Engines{}, cfg, func(d *host.Deps) {
		hb = &hangingBroker{Broker: d.Broker}
		d.Broker = hb
	})
	code := createLink(t, inst.url, `{"url":"https://example.com/outage"}`).str("code")
	hb.down.Store(true)
	var slowest time.Duration
	redirect := func(i int) {
		start := time.Now()
		r := do(t, "GET", inst.url+"/"+code, "")
		if r.status != http.StatusFound {
			t.Fatalf("redirect %d during the outage: %d", i, r.status)
		}
		slowest = max(slowest, time.Since(start))
	}
	// Some clicks, until the publisher is stuck in a hanging publish.
	for i := 0; hb.publishes.Load() == 0; i++ {
		redirect(i)
		time.Sleep(time.Millisecond)
	}
	// Now the buffer (100) fills and everything past it is dropped.
	for i := 0; i < 2000; i++ {
		redirect(i)
	}
	// Generous bound for a shared CI machine; a blocked redirect would take
	// the publish timeout (2 s).
	if slowest > 500*time.Millisecond {
		t.Fatalf("slowest redirect during the outage took %v", slowest)
	}
	if dropped := testutil.ToFloat64(inst.svc.clicks.metrics.dropped); dropped < 2000-100 {
		t.Fatalf("dropped %v events, want at least %d", dropped, 2000-100)
	}
	hb.down.Store(false) // recovery: new clicks flow again
	before := testutil.ToFloat64(inst.svc.clicks.metrics.published)
	do(t, "GET", inst.url+"/"+code, "")
	testsvc.WaitUntil(t, "publishing resumes", 15*time.Second, func() bool {
		return testutil.ToFloat64(inst.svc.clicks.metrics.published) > before
	})
}

// A redelivered click batch is counted once, on every SQL engine.
func TestClickBatchesCountedOnce(t *testing.T) {
	for _, e := range testsvc.SQLEngines {
		t.Run(e.Name, func(t *testing.T) {
			st := openTestStore(t, e.URL(t))
			ctx := context.Background()
			now := time.Now()
			if err := st.create(ctx, &Link{Code: "abc", URL: "https://e.com", CreatedAt: now, DeleteTokenHash: "h"}); err != nil {
				t.Fatal(err)
			}
			day := now.UTC().Format(time.DateOnly)
			batch := ClickBatch{ID: "b1", Counts: []ClickCount{
				{ClickKey{Code: "abc", Day: day, Referrer: "x.com", Agent: "curl"}, 1},
				{ClickKey{Code: "abc", Day: day, Referrer: "y.com", Agent: "curl"}, 1},
				{ClickKey{Code: "abc", Day: day, Referrer: "bad", Agent: "curl"}, -7},  // ignored
				{ClickKey{Code: "a b", Day: day, Referrer: "x.com", Agent: "curl"}, 1}, // ignored
			}}
			other := ClickBatch{ID: "b2", Counts: []ClickCount{{ClickKey{Code: "abc", Day: day, Referrer: "x.com", Agent: "chrome"}, 1}}}
			if n, skipped, err := st.applyBatches(ctx, []ClickBatch{batch}, now); err != nil || n != 2 || skipped != 0 {
				t.Fatalf("first: %d %d %v", n, skipped, err)
			}
			// Redelivery of b1 together with a new batch, and b2 twice in one flush.
			if n, skipped, err := st.applyBatches(ctx, []ClickBatch{batch, other, other}, now); err != nil || n != 1 || skipped != 2 {
				t.Fatalf("second: %d %d %v", n, skipped, err)
			}
			stats, err := st.stats(ctx, "abc", 10)
			if err != nil {
				t.Fatal(err)
			}
			if stats.Clicks != 3 || stats.ByAgent["curl"] != 2 || stats.ByAgent["chrome"] != 1 ||
				stats.TopReferrers[0] != (Referrer{Host: "x.com", Clicks: 2}) {
				t.Fatalf("stats %+v", stats)
			}
			// The most clicked links, most first, on every engine.
			if err := st.create(ctx, &Link{Code: "xyz", URL: "https://e.com/x", CreatedAt: now, DeleteTokenHash: "h"}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.applyBatches(ctx, []ClickBatch{{ID: "b3", Counts: []ClickCount{{ClickKey{Code: "xyz", Day: day, Referrer: "x.com", Agent: "curl"}, 5}}}}, now); err != nil {
				t.Fatal(err)
			}
			top, err := st.top(ctx, 5)
			if err != nil || len(top) != 2 || top[0].Code != "xyz" || top[0].Clicks != 5 || top[1].Code != "abc" || top[1].Clicks != 3 || top[0].URL != "https://e.com/x" {
				t.Fatalf("top: %+v %v", top, err)
			}
			if top, _ := st.top(ctx, 1); len(top) != 1 || top[0].Code != "xyz" {
				t.Fatalf("top 1: %+v", top)
			}
			if err := st.pruneBatches(ctx, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			// Case-sensitive codes on every engine (MariaDB needs ascii_bin).
			if err := st.create(ctx, &Link{Code: "ABC", URL: "https://e.com/2", CreatedAt: now, DeleteTokenHash: "h"}); err != nil {
				t.Fatalf("code differing only in case: %v", err)
			}
			if l, _ := st.get(ctx, "ABC"); l == nil || l.URL != "https://e.com/2" {
				t.Fatalf("get ABC: %+v", l)
			}
			if ok, err := st.delete(ctx, "abc"); err != nil || !ok {
				t.Fatalf("delete: %v %v", ok, err)
			}
			if s, _ := st.stats(ctx, "abc", 10); s.Clicks != 0 {
				t.Fatal("stats survived the delete")
			}
		})
	}
}

func TestCacheEncoding(t *testing.T) {
	exp := time.UnixMilli(1_900_000_000_123).UTC()
	for _, l := range []*Link{{Code: "a", URL: "https://e.com/x"}, {Code: "b", URL: "https://e.com/y", ExpiresAt: &exp}} {
		got, ok := decodeLink(l.Code, encodeLink(l))
		if !ok || got.URL != l.URL || (l.ExpiresAt == nil) != (got.ExpiresAt == nil) ||
			(l.ExpiresAt != nil && !got.ExpiresAt.Equal(*l.ExpiresAt)) {
			t.Fatalf("%+v -> %+v", l, got)
		}
	}
	if _, ok := decodeLink("x", notFoundMarker); ok {
		t.Fatal("not-found marker decoded as a link")
	}
}
