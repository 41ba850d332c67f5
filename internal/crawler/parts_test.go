package crawler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/crawler/testweb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func mustWeb(t *testing.T) *testweb.Web {
	t.Helper()
	w, err := testweb.New(testweb.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A page's title, description, canonical link, language and links, its
// links normalised from every spelling the synthetic web writes.
func TestExtractHTML(t *testing.T) {
	w := mustWeb(t)
	for _, c := range []struct{ i, j int }{{0, -1}, {0, 3}, {7, 19}, {12, 0}} {
		path := "/"
		if c.j >= 0 {
			path = "/p/" + strconv.Itoa(c.j) + ".html"
		}
		base, _ := url.Parse(w.Origin(c.i) + path)
		ex := ExtractHTML(base, w.Answer(c.i, path).Body)
		var want []string
		for _, l := range w.Links(c.i, c.j) {
			n, err := Normalize(l)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(want, n) {
				want = append(want, n)
			}
		}
		if fmt.Sprint(ex.Links) != fmt.Sprint(want) {
			t.Errorf("host %d page %d links\n got %v\nwant %v", c.i, c.j, ex.Links, want)
		}
		if !strings.Contains(ex.Title, testweb.HostName(c.i)) || ex.Description == "" || ex.Lang == "" || ex.Canonical != base.String() {
			t.Errorf("host %d page %d: %q %q %q %q", c.i, c.j, ex.Title, ex.Description, ex.Lang, ex.Canonical)
		}
	}
	base, _ := url.Parse("http://x.test/")
	ex := ExtractHTML(base, []byte(`<html><head><script>var a = "<a href='/no'>";</script></head><body><a href="/yes">y</a><a rel="nofollow" href="/nf">n</a><a href="mailto:a@b">m</a><a href="/yes#again">again</a><p>words here`))
	if fmt.Sprint(ex.Links) != "[http://x.test/yes]" || !strings.Contains(ex.Text, "words here") || strings.Contains(ex.Text, "var a") {
		t.Errorf("links %v, text %q", ex.Links, ex.Text)
	}
}

// The synthetic web's near duplicates (one word changed) are found, and
// no two unrelated pages are grouped.
func TestNearDuplicatesOnTheSyntheticWeb(t *testing.T) {
	w := mustWeb(t)
	text := func(i int, path string) string {
		base, _ := url.Parse(w.Origin(i) + path)
		return ExtractHTML(base, w.Answer(i, path).Body).Text
	}
	var nd NearDuplicates
	id := int64(0)
	ids := map[int64]string{}
	for i := 0; i < 50; i++ {
		for j := 0; j < 20; j++ {
			id++
			ids[id] = fmt.Sprintf("%d/%d", i, j)
			if other, ok := nd.Add(SimHash(text(i, "/p/"+strconv.Itoa(j)+".html")), id); ok {
				t.Fatalf("unrelated pages %s and %s grouped", ids[other], ids[id])
			}
		}
	}
	found, total := 0, 0
	for i := 0; i < 50; i += 5 {
		for j := 0; j < 20; j++ {
			total++
			id++
			if other, ok := nd.Add(SimHash(text(i, "/near/"+strconv.Itoa(j)+".html")), id); ok {
				if ids[other] != fmt.Sprintf("%d/%d", i, j) {
					t.Fatalf("near/%d of host %d grouped with %s", j, i, ids[other])
				}
				found++
			}
		}
	}
	if found*100 < total*95 {
		t.Fatalf("near duplicates found: %d of %d", found, total)
	}
	t.Logf("near duplicates found: %d of %d", found, total)
}

// The block index answers as a comparison with every fingerprint would.
func TestNearDuplicatesIndexIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, k := range []int{1, 3, 6, 10} {
		nd := NearDuplicates{MaxDistance: k}
		var all []uint64
		for n := 0; n < 3000; n++ {
			fp := rng.Uint64()
			if n > 0 && rng.IntN(3) == 0 { // a planted neighbour
				fp = all[rng.IntN(len(all))]
				for f := rng.IntN(k + 3); f > 0; f-- {
					fp ^= 1 << rng.IntN(64)
				}
			}
			want := false
			for _, o := range all {
				if Distance(o, fp) <= k {
					want = true
					break
				}
			}
			if _, got := nd.Add(fp, int64(n+1)); got != want {
				t.Fatalf("k=%d, #%d: index says %v, brute force %v", k, n, got, want)
			}
			all = append(all, fp)
		}
	}
}

func TestParseRobots(t *testing.T) {
	rules := ParseRobots(200, []byte("User-agent: *\nDisallow: /private/\nCrawl-delay: 0.5\n\nUser-agent: "+Agent+"\nDisallow: /mine/\n"), nil)
	if rules.Kind != "rules" || rules.Allowed("/mine/x") || !rules.Allowed("/private/x") {
		t.Errorf("our own group wins: %+v", rules)
	}
	star := ParseRobots(200, []byte("User-agent: *\nDisallow: /private/\nCrawl-delay: 0.5\n"), nil)
	if star.Allowed("/private/1.html") || !star.Allowed("/p/1.html") || star.Delay != 500*time.Millisecond {
		t.Errorf("the * group: %+v", star)
	}
	for _, c := range []struct {
		status int
		err    error
		kind   string
		any    bool
	}{{404, nil, "missing", true}, {403, nil, "missing", true}, {500, nil, "error", false}, {503, nil, "error", false}, {0, errors.New("timeout"), "unreachable", false}, {200, nil, "rules", true}} {
		r := ParseRobots(c.status, nil, c.err)
		if r.Kind != c.kind || r.Allowed("/p/1.html") != c.any {
			t.Errorf("status %d err %v: %+v", c.status, c.err, r)
		}
	}
	now := time.Unix(1000, 0)
	cache := NewRobotsCache(time.Hour, func() time.Time { return now })
	cache.Put("a", star)
	cache.Put("b", ParseRobots(500, nil, nil))
	now = now.Add(7 * time.Minute)
	if _, ok := cache.Get("a"); !ok {
		t.Error("rules expired early")
	}
	if _, ok := cache.Get("b"); ok {
		t.Error("an error kept past a tenth of the TTL")
	}
	now = now.Add(time.Hour)
	if _, ok := cache.Get("a"); ok {
		t.Error("rules kept past the TTL")
	}
}

func TestDNSCache(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	lookup := func(ctx context.Context, name string) ([]netip.Addr, error) {
		calls.Add(1)
		<-release
		if name == "bad.test" {
			return nil, errors.New("no such host")
		}
		return []netip.Addr{netip.MustParseAddr("127.20.0.1")}, nil
	}
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := NewDNSCache(lookup, time.Minute, clock)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a, err := c.Resolve(context.Background(), "host0.test"); err != nil || a[0].String() != "127.20.0.1" {
				t.Error(a, err)
			}
		}()
	}
	// All 20 missed the cache and wait behind the one lookup in flight.
	testsvc.WaitUntil(t, "20 resolutions waiting", 5*time.Second, func() bool { _, misses := c.Stats(); return misses == 20 })
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("20 concurrent resolutions made %d lookups", n)
	}
	if _, err := c.Resolve(context.Background(), "bad.test"); err == nil {
		t.Fatal("a failed lookup succeeded")
	}
	_, _ = c.Resolve(context.Background(), "bad.test") // cached failure
	mu.Lock()
	now = now.Add(30 * time.Second)
	mu.Unlock()
	_, _ = c.Resolve(context.Background(), "host0.test") // fresh
	_, _ = c.Resolve(context.Background(), "bad.test")   // a failure lives a tenth of the TTL
	if n := calls.Load(); n != 3 {
		t.Fatalf("lookups %d, want 3", n)
	}
}

func TestGuard(t *testing.T) {
	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.20.0.0/16")}}
	for addr, ok := range map[string]bool{
		"127.20.3.4": true, "93.184.216.34": true, "127.0.0.1": false, "10.1.2.3": false, "192.168.1.1": false,
		"169.254.169.254": false, "0.0.0.0": false, "::1": false, "224.0.0.1": false, "::ffff:127.0.0.1": false,
	} {
		if err := g.Check(netip.MustParseAddr(addr)); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

// The fetcher against the synthetic web: a page, a redirect not
// followed, a PDF not read, a huge page and an endless one cut, a name
// that resolves outside the allowed range refused.
func TestFetcher(t *testing.T) {
	cfg := testweb.DefaultConfig()
	cfg.Hosts = 5
	w, _ := testweb.New(cfg)
	srv, err := testweb.Start(w, testweb.ServeConfig{BaseIP: netip.MustParseAddr("127.22.0.0")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dns, err := srv.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	f := NewFetcher(FetchConfig{Timeout: 2 * time.Second, MaxBody: 1 << 20},
		&Dialer{DNS: NewDNSCache(NewLookup(dns.Addr()), time.Minute, nil), Guard: Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.22.0.0/16")}}})
	ctx := context.Background()
	r, err := f.Get(ctx, w.PageURL(3, 2))
	if err != nil || r.Status != 200 || string(r.Body) != string(w.Answer(3, "/p/2.html").Body) {
		t.Fatalf("page: %v %+v", err, r)
	}
	if r, err := f.Get(ctx, w.Origin(0)+"/r/2"); err != nil || r.Status != 301 || r.Location != "/r/1" {
		t.Fatalf("redirect: %v %+v", err, r)
	}
	if r, err := f.Get(ctx, w.Origin(0)+"/file.pdf"); err != nil || r.Status != 200 || r.Body != nil {
		t.Fatalf("pdf: %v %+v", err, r)
	}
	for _, p := range []string{"/huge.html", "/stream.html"} {
		if r, err := f.Get(ctx, w.Origin(0)+p); err != nil || !r.Truncated || len(r.Body) != 1<<20 {
			t.Fatalf("%s: %v truncated %v, %d bytes", p, err, r != nil && r.Truncated, len(r.Body))
		}
	}
	if _, err := f.Get(ctx, fmt.Sprintf("http://%s:%d/secret", testweb.InternalName, srv.Port())); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("internal name: %v", err)
	}
	if _, err := f.Get(ctx, "http://127.0.0.1:1/"); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("a literal loopback address: %v", err)
	}
}

// The bit-sliced SimHash is the textbook one: 64 votes a shingle, the
// sign of each bit's total.
func TestSimHashMatchesTheTextbookLoop(t *testing.T) {
	textbook := func(text string) uint64 {
		words := strings.Fields(strings.ToLower(text))
		if len(words) == 0 {
			return 0
		}
		var votes [64]int
		shingle := func(ws []string) {
			h := fnv.New64a()
			for _, w := range ws {
				h.Write([]byte(w + " "))
			}
			x := h.Sum64()
			for b := range 64 {
				if x&(1<<b) != 0 {
					votes[b]++
				} else {
					votes[b]--
				}
			}
		}
		if len(words) < 3 {
			shingle(words)
		}
		for i := 0; i+3 <= len(words); i++ {
			shingle(words[i : i+3])
		}
		var fp uint64
		for b := range 64 {
			if votes[b] > 0 {
				fp |= 1 << b
			}
		}
		return fp
	}
	rng := rand.New(rand.NewPCG(20, 22))
	vocab := strings.Fields("the crawler fetched a page of host Über naïve résumé and its links went to the frontier queue")
	for trial := range 500 {
		n := rng.IntN(400)
		var b strings.Builder
		for range n {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			b.WriteString([]string{" ", "\n", "\t ", "  "}[rng.IntN(4)])
		}
		if got, want := SimHash(b.String()), textbook(b.String()); got != want {
			t.Fatalf("trial %d (%d words): %016x, the textbook loop says %016x", trial, n, got, want)
		}
	}
}
