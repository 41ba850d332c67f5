package testweb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func mustWeb(t *testing.T, cfg Config) *Web {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Hosts: 0, PagesPerHost: 1}, {Hosts: 1, PagesPerHost: 0}, {Hosts: 70_000, PagesPerHost: 1}, {Hosts: 1, PagesPerHost: 1, Slow: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// The model is a function of its config: two webs from one seed answer
// every path alike, another seed differs.
func TestModelIsDeterministic(t *testing.T) {
	a, b := mustWeb(t, DefaultConfig()), mustWeb(t, DefaultConfig())
	other := DefaultConfig()
	other.Seed = 2
	c := mustWeb(t, other)
	differ := 0
	for i := 0; i < 50; i++ {
		for _, p := range []string{"/", "/p/0.html", "/p/7.html", "/robots.txt", "/near/1.html"} {
			x, y, z := a.Answer(i, p), b.Answer(i, p), c.Answer(i, p)
			if x.Status != y.Status || string(x.Body) != string(y.Body) {
				t.Fatalf("host %d %s differs between two webs of one seed", i, p)
			}
			if string(x.Body) != string(z.Body) {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Fatal("another seed made the same web")
	}
}

func TestHostIndex(t *testing.T) {
	w := mustWeb(t, DefaultConfig())
	for name, want := range map[string]int{"host0.test": 0, "HOST49.test:8080": 49, "host7.test": 7} {
		if i, ok := w.HostIndex(name); !ok || i != want {
			t.Errorf("HostIndex(%q) = %d, %v", name, i, ok)
		}
	}
	for _, bad := range []string{"host50.test", "host-1.test", "host01.test", "example.com", "host1.test.evil", ""} {
		if _, ok := w.HostIndex(bad); ok {
			t.Errorf("HostIndex(%q) accepted", bad)
		}
	}
}

// Every page is reachable from host0's home through the chain links, the
// in-degree of hosts is skewed, and the hazards behave as named.
func TestGraphAndHazards(t *testing.T) {
	w := mustWeb(t, DefaultConfig())
	inDegree := map[string]int{}
	reach := map[string]bool{w.HomeURL(0): true}
	queue := []string{w.HomeURL(0)}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		host, path, _ := strings.Cut(strings.TrimPrefix(u, "http://"), "/")
		i, ok := w.HostIndex(host)
		if !ok || !strings.HasPrefix("/"+path, "/p/") && path != "" {
			continue
		}
		j := -1
		if path != "" {
			j, _ = number("/"+path, "/p/", ".html")
		}
		for _, l := range w.Links(i, j) {
			h, _, _ := strings.Cut(strings.TrimPrefix(l, "http://"), "/")
			if h != host {
				inDegree[h]++
			}
			if !reach[l] {
				reach[l] = true
				queue = append(queue, l)
			}
		}
	}
	for i := 0; i < 50; i++ {
		for j := 0; j < 20; j++ {
			if !reach[w.PageURL(i, j)] {
				t.Fatalf("%s is unreachable from host0's home", w.PageURL(i, j))
			}
		}
	}
	if inDegree[HostName(0)] < 5*inDegree[HostName(40)] {
		t.Errorf("host in-degree is not skewed: host0 %d, host40 %d", inDegree[HostName(0)], inDegree[HostName(40)])
	}

	if a := w.Answer(0, "/dup/0.html"); string(a.Body) != string(w.Answer(0, "/p/0.html").Body) {
		t.Error("the exact duplicate differs")
	}
	near, orig := w.Answer(0, "/near/1.html"), w.Answer(0, "/p/1.html")
	if string(near.Body) == string(orig.Body) || len(near.Body) < len(orig.Body)-40 {
		t.Error("the near duplicate is not near")
	}
	for path, want := range map[string]string{"/r/3": "/r/2", "/r/0": "/p/0.html", "/loop/a": "/loop/b", "/loop/b": "/loop/a"} {
		if a := w.Answer(0, path); a.Location != want || a.Status/100 != 3 {
			t.Errorf("%s: %d → %q, want → %q", path, a.Status, a.Location, want)
		}
	}
	if a := w.Answer(0, "/calendar/2026/12/"); !strings.Contains(string(a.Body), `/calendar/2027/01/`) || !strings.Contains(string(a.Body), `/calendar/2026/11/`) {
		t.Errorf("calendar: %s", a.Body)
	}
	if a := w.Answer(1, "/hazards.html"); a.Status != 404 {
		t.Error("a host without hazards serves them")
	}
	if a := w.Answer(0, "/p/20.html"); a.Status != 404 {
		t.Error("a page past the host's pages exists")
	}
}

func TestRobots(t *testing.T) {
	w := mustWeb(t, DefaultConfig())
	kinds := map[Robots]int{}
	for i := 0; i < 50; i++ {
		kinds[w.RobotsOf(i)]++
		a := w.Answer(i, "/robots.txt")
		switch w.RobotsOf(i) {
		case RobotsRules:
			if !strings.Contains(string(a.Body), "Disallow: /private/") || w.Allowed(i, "/private/1.html") || !w.Allowed(i, "/p/1.html") {
				t.Errorf("host %d rules: %q", i, a.Body)
			}
		case RobotsDelay:
			if !strings.Contains(string(a.Body), "Crawl-delay: 0.1") || w.DelayOf(i) != 100*time.Millisecond {
				t.Errorf("host %d crawl-delay: %q", i, a.Body)
			}
		case RobotsMissing:
			if a.Status != 404 || !w.Allowed(i, "/private/1.html") {
				t.Errorf("host %d missing: %d", i, a.Status)
			}
		case RobotsError, RobotsTimeout:
			if (a.Status != 500 && a.Delay == 0) || w.Allowed(i, "/") || !w.Allowed(i, "/robots.txt") {
				t.Errorf("host %d %s: %d", i, w.RobotsOf(i), a.Status)
			}
		}
	}
	if len(kinds) != 6 {
		t.Fatalf("robots kinds %v", kinds)
	}
}

// The checker counts each kind of violation, and a polite crawl has none.
func TestCheck(t *testing.T) {
	w := mustWeb(t, DefaultConfig())
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	f := func(host int, path string, start, end int) Fetch {
		return Fetch{Host: host, Path: path, Start: at(start), End: at(end), Status: 200}
	}
	polite := []Fetch{
		f(0, "/robots.txt", 0, 5), f(0, "/", 25, 30), f(0, "/p/1.html", 50, 60),
		f(3, "/robots.txt", 0, 1), f(3, "/", 101, 102), // host 3 asks for 100 ms
		f(1, "/robots.txt", 10, 11), f(1, "/p/0.html", 31, 40),
	}
	if rep := w.Check(polite, Rules{Delay: 20 * time.Millisecond}); !rep.OK() || rep.Pages != 4 || rep.Hosts != 3 {
		t.Fatalf("a polite crawl: %+v", rep)
	}
	rude := []Fetch{
		f(0, "/", 0, 10), f(0, "/p/1.html", 15, 20), // 5 ms after: under 20
		f(0, "/p/2.html", 18, 30), // during the previous fetch
		f(0, "/private/1.html", 100, 101),
		f(7, "/", 0, 1),                    // host 7's robots.txt fails: nothing allowed
		f(3, "/", 0, 1), f(3, "/", 50, 51), // a duplicate, and sooner than host 3's crawl delay
	}
	rep := w.Check(rude, Rules{Delay: 20 * time.Millisecond})
	if rep.Politeness != 3 || rep.Robots != 2 || rep.Duplicates != 1 || len(rep.Examples) != 6 {
		t.Fatalf("a rude crawl: %+v", rep)
	}
}

// The server answers each host on its own address, logs each fetch, and
// its name server resolves the hosts.
func TestServerAndDNS(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Hosts, cfg.Slow = 12, 200*time.Millisecond
	w := mustWeb(t, cfg)
	srv, err := Start(w, ServeConfig{BaseIP: netip.MustParseAddr("127.21.0.0")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d, err := srv.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", d.Addr())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "host11.test")
	if err != nil || len(addrs) != 1 || addrs[0] != "127.21.0.12" {
		t.Fatalf("host11.test: %v %v", addrs, err)
	}
	if addrs, err := r.LookupHost(ctx, InternalName); err != nil || addrs[0] != "127.0.0.1" {
		t.Fatalf("%s: %v %v", InternalName, addrs, err)
	}
	if _, err := r.LookupHost(ctx, "host12.test"); err == nil {
		t.Fatal("a host the web does not have resolved")
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		ips, err := r.LookupHost(ctx, host)
		if err != nil {
			return nil, err
		}
		return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(ips[0], port))
	}}}
	get := func(u string) (int, string) {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(w.PageURL(5, 3)); code != 200 || body != string(w.Answer(5, "/p/3.html").Body) {
		t.Fatalf("page: %d %.80s", code, body)
	}
	if code, _ := get(fmt.Sprintf("http://host0.test:%d/r/1", srv.Port())); code != 200 { // followed to /p/0.html
		t.Fatalf("redirect chain: %d", code)
	}
	// A client that gives up on the endless page ends the fetch.
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	req, _ := http.NewRequestWithContext(sctx, "GET", fmt.Sprintf("http://host0.test:%d/stream.html", srv.Port()), nil)
	if resp, err := client.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	scancel()
	var fetches []Fetch
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if fetches = srv.Log().Fetches(); len(fetches) == 5 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	paths := map[string]bool{}
	for _, f := range fetches {
		paths[HostName(f.Host)+f.Path] = true
		if f.End.Before(f.Start) {
			t.Errorf("fetch %+v ends before it starts", f)
		}
	}
	for _, p := range []string{"host5.test/p/3.html", "host0.test/r/1", "host0.test/r/0", "host0.test/p/0.html", "host0.test/stream.html"} {
		if !paths[p] {
			t.Errorf("%s not in the log %v", p, paths)
		}
	}
}
