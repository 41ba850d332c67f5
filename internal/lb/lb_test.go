package lb

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

const testToken = "lb-admin-token-0123456789abcdef0123"

// backendServer answers with its name; /healthz answers healthy() ? 200 : 500.
type backendServer struct {
	*httptest.Server
	name    string
	hits    atomic.Int64
	healthy atomic.Bool
	delay   atomic.Int64 // ns added to every answer
	lastReq atomic.Value // *http.Request headers of the last request
}

func newBackend(t *testing.T, name string) *backendServer {
	t.Helper()
	b := &backendServer{name: name}
	b.healthy.Store(true)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if !b.healthy.Load() {
				w.WriteHeader(500)
			}
			return
		}
		if r.URL.Path == "/ws" {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, append([]byte(b.name+":"), msg...)); err != nil {
					return
				}
			}
		}
		b.hits.Add(1)
		b.lastReq.Store(r.Header.Clone())
		if d := b.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s %s %s", b.name, r.Method, r.Host)
	}))
	t.Cleanup(b.Close)
	return b
}

type testLB struct {
	*Balancer
	url, admin string
}

func startLB(t *testing.T, pcfg PoolConfig, xcfg ProxyConfig, backends ...string) *testLB {
	t.Helper()
	tok, _ := auth.NewAdminToken(testToken)
	b, err := New(pcfg, xcfg, tok, backends)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(b.Proxy)
	admin := httptest.NewServer(b.AdminHandler())
	ctx, cancel := context.WithCancel(context.Background())
	go b.Pool.RunChecks(ctx)
	t.Cleanup(func() { cancel(); front.Close(); admin.Close() })
	return &testLB{Balancer: b, url: front.URL, admin: admin.URL}
}

func fastConfig() PoolConfig {
	c := DefaultPoolConfig()
	c.HealthInterval, c.HealthTimeout = 50*time.Millisecond, 200*time.Millisecond
	c.Outliers.BaseEjection = 2 * time.Second
	return c
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestProxiesWithForwardingHeaders(t *testing.T) {
	a := newBackend(t, "a")
	lb := startLB(t, fastConfig(), DefaultProxyConfig(), a.URL)
	code, body := get(t, lb.url+"/x?y=1")
	if code != 200 || !strings.HasPrefix(body, "a GET 127.0.0.1:") || !strings.HasSuffix(body, strings.TrimPrefix(lb.url, "http://")) {
		t.Fatalf("%d %q: want the backend's answer, with the client's Host", code, body)
	}
	h := a.lastReq.Load().(http.Header)
	if h.Get("X-Forwarded-For") != "127.0.0.1" || !strings.HasPrefix(h.Get("Forwarded"), "for=127.0.0.1;host=") || h.Get("X-Forwarded-Proto") != "http" {
		t.Fatalf("forwarding headers %v", h)
	}
}

func TestBadRequestsAndNoBackendsAreJSON(t *testing.T) {
	a := newBackend(t, "a")
	x := DefaultProxyConfig()
	x.MaxBody = 100
	lb := startLB(t, fastConfig(), x, a.URL)
	resp, err := http.Post(lb.url+"/", "text/plain", strings.NewReader(strings.Repeat("x", 200)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("big body: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := lb.Pool.Remove(lb.Pool.List()[0].ID); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(lb.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 503 || body["error"] == nil {
		t.Fatalf("no backends: %d %v", resp.StatusCode, body)
	}
	if code, _ := get(t, lb.admin+"/readyz"); code != 503 {
		t.Fatalf("readyz with no backends: %d", code)
	}
}

// A backend dies under load: idempotent requests are retried on another
// backend and none fails; the dead one is ejected within a second; a
// POST is never sent twice.
func TestDeadBackendUnderLoad(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	cfg := fastConfig()
	cfg.HealthPath = "" // passive detection alone must find it
	lb := startLB(t, cfg, DefaultProxyConfig(), a.URL, b.URL, c.URL)
	b.Close() // refused from now on
	died := time.Now()
	var failures, posts atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				resp, err := http.Get(lb.url + "/")
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of 400 GETs failed though two backends lived", failures.Load())
	}
	var ejectedAt time.Time
	for _, x := range lb.Pool.List() {
		if x.ID == strings.TrimPrefix(b.URL, "http://") {
			if x.State != "ejected" {
				t.Fatalf("dead backend is %s, want ejected: %+v", x.State, x)
			}
			ejectedAt = time.Now()
		}
	}
	if ejectedAt.Sub(died) > time.Second {
		t.Fatalf("ejected %v after it died, want within 1 s", ejectedAt.Sub(died))
	}
	// POSTs to a dead backend are not retried: restore b's place with a
	// new dead address and count what reaches a and c.
	dead := newBackend(t, "dead")
	dead.Close()
	lb2 := startLB(t, cfg, DefaultProxyConfig(), dead.URL, a.URL)
	before := a.hits.Load()
	for i := 0; i < 10; i++ {
		resp, err := http.Post(lb2.url+"/", "text/plain", strings.NewReader("once"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			posts.Add(1)
		}
	}
	if got := a.hits.Load() - before; got != posts.Load() {
		t.Fatalf("a got %d POSTs and %d were answered 200: a POST was sent twice", got, posts.Load())
	}
	if posts.Load() == 10 {
		t.Fatal("no POST met the dead backend: the test proved nothing")
	}
}

func TestActiveChecksTakeABackendOutAndBack(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	lb := startLB(t, fastConfig(), DefaultProxyConfig(), a.URL, b.URL)
	b.healthy.Store(false)
	bid := strings.TrimPrefix(b.URL, "http://")
	state := func() string {
		for _, x := range lb.Pool.List() {
			if x.ID == bid {
				return x.State
			}
		}
		return ""
	}
	testsvc.WaitUntil(t, "b down after two failed checks", 5*time.Second, func() bool { return state() == "down" })
	before := b.hits.Load()
	for i := 0; i < 20; i++ {
		get(t, lb.url+"/")
	}
	if b.hits.Load() != before {
		t.Fatal("a backend that is down got traffic")
	}
	b.healthy.Store(true)
	testsvc.WaitUntil(t, "b up after two good checks", 5*time.Second, func() bool { return state() == "up" })
	testsvc.WaitUntil(t, "b to get traffic again (slow start)", 5*time.Second, func() bool {
		get(t, lb.url+"/")
		return b.hits.Load() > before
	})
}

func TestWebSocketThroughTheBalancer(t *testing.T) {
	a := newBackend(t, "a")
	x := DefaultProxyConfig()
	x.Timeout = 200 * time.Millisecond // the answer timeout must not cut a WebSocket
	lb := startLB(t, fastConfig(), x, a.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(lb.url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := 0; i < 3; i++ {
		if i == 2 {
			time.Sleep(300 * time.Millisecond) // past the answer timeout
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(fmt.Sprint("hello ", i))); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil || string(msg) != fmt.Sprint("a:hello ", i) {
			t.Fatalf("echo %d: %q %v", i, msg, err)
		}
	}
	if got := lb.Pool.List()[0].InFlight; got != 1 {
		t.Fatalf("an open WebSocket counts %d in flight, want 1", got)
	}
	c.Close(websocket.StatusNormalClosure, "")
	testsvc.WaitUntil(t, "the closed WebSocket to leave in-flight", 5*time.Second, func() bool { return lb.Pool.List()[0].InFlight == 0 })
}

func TestAdminAPI(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	lb := startLB(t, fastConfig(), DefaultProxyConfig(), a.URL)
	do := func(method, path, body, token string) int {
		req, _ := http.NewRequest(method, lb.admin+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bid := strings.TrimPrefix(b.URL, "http://")
	for _, c := range []struct {
		method, path, body, token string
		want                      int
	}{
		{"POST", "/admin/backends", `{"url":"` + b.URL + `"}`, "", 401},
		{"POST", "/admin/backends", `{"url":"` + b.URL + `"}`, "wrong", 403},
		{"POST", "/admin/backends", `{"url":"ftp://x"}`, testToken, 400},
		{"POST", "/admin/backends", `{"url":"` + b.URL + `","weight":5000}`, testToken, 400},
		{"POST", "/admin/backends", `{"url":"` + b.URL + `","weight":3}`, testToken, 201},
		{"POST", "/admin/backends", `{"url":"` + b.URL + `"}`, testToken, 409},
		{"PUT", "/admin/backends/" + bid + "/weight", `{"weight":2}`, testToken, 200},
		{"PUT", "/admin/backends/nope:1/weight", `{"weight":2}`, testToken, 404},
		{"POST", "/admin/backends/" + bid + "/drain", ``, testToken, 200},
	} {
		if got := do(c.method, c.path, c.body, c.token); got != c.want {
			t.Errorf("%s %s %s: %d, want %d", c.method, c.path, c.body, got, c.want)
		}
	}
	var list struct{ Backends []Backend }
	resp, _ := http.Get(lb.admin + "/admin/backends")
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Backends) != 2 || list.Backends[1].Weight != 2 || list.Backends[1].State != "draining" {
		t.Fatalf("backends %+v", list.Backends)
	}
	before := b.hits.Load()
	for i := 0; i < 10; i++ {
		get(t, lb.url+"/")
	}
	if b.hits.Load() != before {
		t.Fatal("a draining backend got new requests")
	}
	if got := do("DELETE", "/admin/backends/"+bid, "", testToken); got != 200 || len(lb.Pool.List()) != 1 {
		t.Fatalf("remove: %d, %d left", got, len(lb.Pool.List()))
	}
	if code, _ := get(t, lb.admin+"/metrics"); code != 200 {
		t.Fatalf("metrics: %d", code)
	}
}

// A slow backend answers after the timeout: 504 in JSON, and the backend's
// requests in flight come back down.
func TestBackendTimeout(t *testing.T) {
	a := newBackend(t, "a")
	a.delay.Store(int64(time.Second))
	x := DefaultProxyConfig()
	x.Timeout, x.MaxRetries = 100*time.Millisecond, 0
	lb := startLB(t, fastConfig(), x, a.URL)
	start := time.Now()
	code, body := get(t, lb.url+"/")
	if code != 504 || !strings.Contains(body, "did not answer") || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("%d %s after %v", code, body, time.Since(start))
	}
	testsvc.WaitUntil(t, "in flight back to 0", 5*time.Second, func() bool { return lb.Pool.List()[0].InFlight == 0 })
}

// The TCP mode joins connections to backends, skips a dead one (nothing
// was sent, so it is always safe), and balances connections.
func TestTCPModeJoinsConnections(t *testing.T) {
	echo := func(name string) net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					buf := make([]byte, 64)
					n, _ := c.Read(buf)
					_, _ = c.Write(append([]byte(name+":"), buf[:n]...))
				}()
			}
		}()
		t.Cleanup(func() { l.Close() })
		return l
	}
	a, b := echo("a"), echo("b")
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	cfg := fastConfig()
	cfg.TCPChecks, cfg.HealthPath = true, ""
	tok, _ := auth.NewAdminToken(testToken)
	bal, err := New(cfg, DefaultProxyConfig(), tok, []string{"http://" + deadAddr, "http://" + a.Addr().String(), "http://" + b.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	front, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := front.Addr().String()
	front.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bal.ServeTCP(ctx, addr, time.Second, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		var c net.Conn
		testsvc.WaitUntil(t, "the TCP listener", 5*time.Second, func() bool {
			c, err = net.Dial("tcp", addr)
			return err == nil
		})
		_, _ = c.Write([]byte("hi"))
		reply, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.HasSuffix(string(reply), ":hi") {
			t.Fatalf("connection %d: %q %v", i, reply, err)
		}
		seen[strings.SplitN(string(reply), ":", 2)[0]]++
	}
	if seen["a"] < 5 || seen["b"] < 5 {
		t.Fatalf("connections per backend %v: want both used", seen)
	}
}

// Clients that hang up mid-request are no verdict on the backend: twenty
// cancelled requests eject nothing.
func TestClientCancellationsDoNotEject(t *testing.T) {
	a := newBackend(t, "a")
	a.delay.Store(int64(300 * time.Millisecond))
	cfg := fastConfig()
	cfg.HealthPath = ""
	lb := startLB(t, cfg, DefaultProxyConfig(), a.URL)
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", lb.url+"/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		cancel()
	}
	if b := lb.Pool.List()[0]; b.State != "up" || b.Failures != 0 {
		t.Fatalf("after 20 clients hung up: %+v", b)
	}
}
