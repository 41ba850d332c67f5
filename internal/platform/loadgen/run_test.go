package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func fastServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// The open model sends on its schedule: never more than 1 % ahead of it
// (the server sees 4,000 requests spread over at least 99 % of the
// schedule's span), and — with a fast server — not far behind it.
func TestOpenModelKeepsRate(t *testing.T) {
	var mu sync.Mutex
	var first, last time.Time
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		mu.Lock()
		if first.IsZero() {
			first = now
		}
		last = now
		mu.Unlock()
		hits.Add(1)
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: srv.URL}, Rate: 2000, Duration: 2 * time.Second, Connections: 16})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 4000 || hits.Load() != 4000 || res.Errors != 0 {
		t.Fatalf("requests %d, server saw %d, errors %d (%v)", res.Requests, hits.Load(), res.Errors, res.ByKind)
	}
	// The schedule puts 3,999 intervals of 0.5 ms between the first and
	// the last request: 1.9995 s. Ahead by more than 1 % is a bug of the
	// pacing; behind is bounded loosely, since CI runs other packages'
	// tests on the same two cores.
	span := last.Sub(first)
	if span < 1979*time.Millisecond {
		t.Fatalf("the server saw the 4,000 requests within %v: more than 1 %% ahead of the 1.9995 s schedule", span)
	}
	if res.Elapsed > 2500*time.Millisecond {
		t.Fatalf("the run took %v for a 2 s schedule", res.Elapsed)
	}
	if res.Model != "open" || res.ByClass["2xx"] != 4000 {
		t.Fatalf("model %q, classes %v", res.Model, res.ByClass)
	}
}

// When the server stalls for a second, requests scheduled during the stall
// are sent late and their latency counts from when they should have been
// sent: the p99 must show the stall (wrk without correction would not).
func TestOpenModelCountsQueueingDuringStall(t *testing.T) {
	var stallFrom, stallTo atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if now := time.Now().UnixNano(); now >= stallFrom.Load() && now < stallTo.Load() {
			time.Sleep(time.Duration(stallTo.Load() - now))
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	start := time.Now()
	stallFrom.Store(start.Add(1 * time.Second).UnixNano())
	stallTo.Store(start.Add(2 * time.Second).UnixNano())
	res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: srv.URL}, Rate: 500, Duration: 3 * time.Second, Connections: 8})
	if err != nil {
		t.Fatal(err)
	}
	p50, p99 := res.Latency.ValueAtQuantile(50), res.Latency.ValueAtQuantile(99)
	// A third of the requests were due during the stall; the worst waited ~1 s.
	if p99 < 800_000 {
		t.Fatalf("p99 %d µs does not show the 1 s stall", p99)
	}
	if p50 > 50_000 {
		t.Fatalf("p50 %d µs: the unaffected majority should be fast", p50)
	}
	if res.Requests != 1500 {
		t.Fatalf("requests %d, want 1500", res.Requests)
	}
	var over int64
	for _, b := range res.Latency.Distribution() {
		if b.From >= 100_000 {
			over += b.Count
		}
	}
	if over < 300 {
		t.Fatalf("only %d requests over 100 ms; ~500 were due during the stall", over)
	}
}

func TestClosedModel(t *testing.T) {
	srv, _ := fastServer(t)
	res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: srv.URL}, VUs: 4, Think: 100 * time.Millisecond, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Model != "closed" || res.Requests < 32 || res.Requests > 48 {
		t.Fatalf("model %q, %d requests; 4 VUs thinking 100 ms for 1 s make about 40", res.Model, res.Requests)
	}
	res, err = Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: srv.URL}, VUs: 8, Requests: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 1000 {
		t.Fatalf("--requests 1000 sent %d", res.Requests)
	}
}

func TestErrorsByKind(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(500)
		case "/404":
			w.WriteHeader(404)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
	}))
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := ln.Addr().String()
	ln.Close()
	cases := []struct {
		url, kind string
	}{
		{srv.URL + "/500", "status_5xx"}, {srv.URL + "/404", "status_4xx"},
		{srv.URL + "/slow", "timeout"}, {"http://" + closedAddr + "/", "refused"},
	}
	for _, c := range cases {
		res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: c.url}, VUs: 2, Requests: 4, Timeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 4 || res.ByKind[c.kind] != 4 {
			t.Errorf("%s: errors %d by kind %v, want 4 %s", c.url, res.Errors, res.ByKind, c.kind)
		}
	}
}

// The hand-written HTTP/1.1 reader copes with what servers send: chunked
// bodies, Connection: close, no Content-Length, HEAD, 204, and templates.
func TestHTTPProtocolCases(t *testing.T) {
	var paths, bodies []string
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 64)
		n, _ := r.Body.Read(b)
		<-mu
		paths, bodies = append(paths, r.URL.RequestURI()), append(bodies, string(b[:n]))
		mu <- struct{}{}
		switch r.URL.Path {
		case "/chunked":
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
			}
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		case "/nocontent":
			w.WriteHeader(204)
		default:
			w.Write([]byte(strings.Repeat("x", 10_000)))
		}
	}))
	defer srv.Close()
	for _, path := range []string{"/chunked", "/close", "/nocontent", "/big"} {
		res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: srv.URL + path}, VUs: 2, Requests: 50})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 50 || res.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors %v", path, res.Requests, res.Errors, res.ByKind)
		}
	}
	res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: srv.URL + "/big", Method: "HEAD"}, VUs: 1, Requests: 5})
	if err != nil || res.Errors != 0 {
		t.Fatalf("HEAD: %v %v", err, res.ByKind)
	}
	paths, bodies = nil, nil
	res, err = Run(context.Background(), Plan{HTTP: &HTTPTarget{
		URL: srv.URL + "/items/{{seq}}?r={{rand 1 3}}", Method: "POST",
		Headers: []string{"Content-Type: application/json"}, Body: `{"n":{{seq}}}`,
	}, VUs: 1, Requests: 3})
	if err != nil || res.Errors != 0 {
		t.Fatalf("templated POST: %v %v", err, res.ByKind)
	}
	for i := 0; i < 3; i++ {
		if !strings.HasPrefix(paths[i], fmt.Sprintf("/items/%d?r=", i)) || bodies[i] != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("request %d: %q %q", i, paths[i], bodies[i])
		}
	}
}

func TestInterruptKeepsWhatRan(t *testing.T) {
	srv, _ := fastServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := Run(ctx, Plan{HTTP: &HTTPTarget{URL: srv.URL}, Rate: 1000, Duration: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(began) > 3*time.Second || !res.Interrupted || res.Requests < 300 || res.Requests > 700 {
		t.Fatalf("after %v: interrupted %v, %d requests", time.Since(began), res.Interrupted, res.Requests)
	}
}

func TestPlanValidation(t *testing.T) {
	target := &HTTPTarget{URL: "http://127.0.0.1:1/"}
	bad := []Plan{
		{},
		{HTTP: target},
		{HTTP: target, Rate: 10},
		{HTTP: target, VUs: 1},
		{HTTP: target, Rate: 10, VUs: 1, Duration: time.Second},
		{HTTP: &HTTPTarget{URL: "http://example.com/"}, Rate: 10, Duration: time.Second},
		{HTTP: &HTTPTarget{URL: "ftp://127.0.0.1/"}, Rate: 10, Duration: time.Second},
		{HTTP: &HTTPTarget{URL: "http://127.0.0.1/{{nope}}"}, Rate: 10, Duration: time.Second},
		{HTTP: &HTTPTarget{URL: "http://127.0.0.1/", Headers: []string{"NoColon"}}, Rate: 10, Duration: time.Second},
		{HTTP: &HTTPTarget{URL: "http://127.0.0.1/", Method: "G E T"}, Rate: 10, Duration: time.Second},
		{WS: &WSTarget{URL: "http://127.0.0.1/"}, VUs: 1, Duration: time.Second},
	}
	for i, p := range bad {
		if _, err := Run(context.Background(), p); err == nil {
			t.Errorf("plan %d accepted: %+v", i, p)
		}
	}
}

func wsServer(t *testing.T) string {
	hub := make(chan []byte, 1024)
	var conns []*websocket.Conn
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	go func() {
		for msg := range hub {
			<-mu
			for _, c := range conns {
				_ = c.Write(context.Background(), websocket.MessageText, msg)
			}
			mu <- struct{}{}
		}
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		if r.URL.Path == "/broadcast" {
			<-mu
			conns = append(conns, c)
			mu <- struct{}{}
		}
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if r.URL.Path == "/broadcast" {
				hub <- data
				continue
			}
			_ = c.Write(context.Background(), websocket.MessageText, []byte("noise"))
			_ = c.Write(context.Background(), websocket.MessageText, append([]byte("echo:"), data...))
		}
	}))
	t.Cleanup(func() { srv.Close(); close(hub) })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestWebSocket(t *testing.T) {
	base := wsServer(t)
	res, err := Run(context.Background(), Plan{WS: &WSTarget{URL: base + "/echo", Message: "hello {{seq}}", Expect: "echo:"},
		VUs: 4, Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || res.Errors != 0 || res.Received != 400 {
		t.Fatalf("echo: %d requests, %d errors %v, %d received", res.Requests, res.Errors, res.ByKind, res.Received)
	}
	// 5 connections each send 20 messages; each message reaches all 5.
	res, err = Run(context.Background(), Plan{WS: &WSTarget{URL: base + "/broadcast", Message: "m{{seq}}", Broadcast: true},
		VUs: 5, Requests: 100, Think: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 100 || res.Errors != 0 {
		t.Fatalf("broadcast: %d requests, %d errors %v", res.Requests, res.Errors, res.ByKind)
	}
	// Receipts still in flight when the senders stop are not counted; most arrive.
	if res.Received < 300 || res.Received > 500 {
		t.Fatalf("broadcast receipts %d, want up to 500", res.Received)
	}
}

// Plans that would exhaust the process's descriptors are refused with the
// number that fits, instead of growing for minutes (--connections 100000
// took 18.6 GB and ran 53 s past its deadline).
func TestAbsurdPlansAreRefused(t *testing.T) {
	limit := maxConnections()
	for _, p := range []Plan{
		{HTTP: &HTTPTarget{URL: "http://127.0.0.1:1/"}, Rate: 100, Duration: time.Second, Connections: limit + 1},
		{HTTP: &HTTPTarget{URL: "http://127.0.0.1:1/"}, VUs: limit + 1, Duration: time.Second},
	} {
		_, err := Run(context.Background(), p)
		var pe PlanError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "ulimit") {
			t.Fatalf("connections %d, VUs %d: %v", p.Connections, p.VUs, err)
		}
	}
}

// The hard deadline holds even when every request hangs: a server that
// accepts and never answers, a per-request timeout far beyond the deadline.
func TestDeadlineHoldsWhenRequestsHang(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	start := time.Now()
	res, err := Run(context.Background(), Plan{HTTP: &HTTPTarget{URL: "http://" + ln.Addr().String() + "/"},
		VUs: 200, Duration: 300 * time.Millisecond, Timeout: time.Minute, Deadline: 700 * time.Millisecond})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > 3*time.Second || !res.Interrupted {
		t.Fatalf("a 0.7 s deadline: the run took %v (interrupted %v)", took, res.Interrupted)
	}
}
