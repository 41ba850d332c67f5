package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connCountingServer is a backend that counts the connections it accepted.
func connCountingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func directGet(t *testing.T, dt *directTransport, url string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, string(body), resp.Trailer
}

func TestDirectTransportKeepsOneConnectionAlive(t *testing.T) {
	srv, conns := connCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			w.Write([]byte("part1,"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
			w.Header().Set("X-Sum", "42")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/hints":
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Write([]byte("final"))
		default:
			w.Write([]byte("hello " + r.URL.Path))
		}
	})
	dt := newDirectTransport(srv.Listener.Addr().String(), time.Second, 8)
	for i := 0; i < 20; i++ {
		if code, body, _ := directGet(t, dt, srv.URL+"/a"); code != 200 || body != "hello /a" {
			t.Fatalf("got %d %q", code, body)
		}
	}
	code, body, trailer := directGet(t, dt, srv.URL+"/chunked")
	if code != 200 || body != "part1,part2" || trailer.Get("X-Sum") != "42" {
		t.Fatalf("chunked: %d %q trailer %v", code, body, trailer)
	}
	if code, body, _ := directGet(t, dt, srv.URL+"/empty"); code != 204 || body != "" {
		t.Fatalf("204: %d %q", code, body)
	}
	if code, body, _ := directGet(t, dt, srv.URL+"/hints"); code != 200 || body != "final" {
		t.Fatalf("after 103: %d %q", code, body)
	}
	head, _ := http.NewRequest(http.MethodHead, srv.URL+"/a", nil)
	resp, err := dt.RoundTrip(head)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _, _ := directGet(t, dt, srv.URL+"/a"); code != 200 {
		t.Fatalf("after HEAD: %d", code)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d sequential requests opened %d backend connections, want 1", 25, n)
	}
}

func TestDirectTransportBodyClosedEarlyDropsTheConnection(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	srv, conns := connCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			io.WriteString(w, big)
			return
		}
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	dt := newDirectTransport(srv.Listener.Addr().String(), time.Second, 8)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/big", nil)
	resp, err := dt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close() // the rest of the megabyte is still on the wire
	if code, body, _ := directGet(t, dt, srv.URL+"/big"); code != 200 || len(body) != len(big) {
		t.Fatalf("after an early close: %d, %d bytes", code, len(body))
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("backend connections = %d, want 2 (the half-read one must not be reused)", n)
	}
	directGet(t, dt, srv.URL+"/close")
	directGet(t, dt, srv.URL+"/close")
	if n := conns.Load(); n != 3 { // the second /big connection, closed by the first /close; then one more
		t.Fatalf("backend connections = %d, want 3 (Connection: close must not be reused)", n)
	}
	if got := len(dt.idle); got != 0 {
		t.Fatalf("%d idle connections after Connection: close answers", got)
	}
}

// A backend that closes keep-alive connections while they sit idle: a GET
// is sent again on a fresh connection, a POST without an idempotency key
// is not (the backend may have run it).
func TestDirectTransportStaleConnection(t *testing.T) {
	var handled atomic.Int64
	var mu sync.Mutex
	var live []net.Conn
	idled := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		io.WriteString(w, r.Method)
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if s == http.StateIdle {
			live = append(live, c)
			select {
			case idled <- struct{}{}:
			default:
			}
		}
	}
	srv.Start()
	defer srv.Close()
	// closeIdle waits until the server has marked the connection the
	// last exchange used idle (the client may read the answer before
	// that), then closes every idle one.
	closeIdle := func() {
		select {
		case <-idled:
		case <-time.After(5 * time.Second):
			t.Fatal("no connection went idle")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range live {
			c.Close()
		}
		live = nil
	}
	dt := newDirectTransport(srv.Listener.Addr().String(), time.Second, 8)
	directGet(t, dt, srv.URL+"/")
	closeIdle()
	if code, body, _ := directGet(t, dt, srv.URL+"/"); code != 200 || body != "GET" {
		t.Fatalf("GET over a stale connection: %d %q", code, body)
	}
	closeIdle()
	before := handled.Load()
	post, _ := http.NewRequest(http.MethodPost, srv.URL+"/", nil)
	resp, err := dt.RoundTrip(post)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("POST over a stale connection was sent again (status %d)", resp.StatusCode)
	}
	if !errors.Is(err, errStaleConn) {
		t.Fatalf("POST error %v, want the stale-connection error", err)
	}
	if handled.Load() != before {
		t.Fatal("the backend ran the POST")
	}
	keyed, _ := http.NewRequest(http.MethodPost, srv.URL+"/", nil)
	keyed.Header.Set("Idempotency-Key", "k1")
	directGet(t, dt, srv.URL+"/") // a fresh idle connection to go stale
	closeIdle()
	resp, err = dt.RoundTrip(keyed)
	if err != nil {
		t.Fatalf("POST with an idempotency key over a stale connection: %v", err)
	}
	resp.Body.Close()
}

// Cancelling the request's context interrupts a backend that is slow to
// answer, and a body that is slow to arrive.
func TestDirectTransportCancelInterrupts(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := connCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	dt := newDirectTransport(srv.Listener.Addr().String(), time.Second, 8)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/head", nil)
	errc := make(chan error, 1)
	go func() { _, err := dt.RoundTrip(req); errc <- err }()
	time.AfterFunc(50*time.Millisecond, cancel)
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled request stayed blocked on its backend's answer")
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	req2, _ := http.NewRequestWithContext(ctx2, http.MethodGet, srv.URL+"/body", nil)
	resp, err := dt.RoundTrip(req2)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, err := io.ReadAll(resp.Body); errc <- err }()
	time.AfterFunc(50*time.Millisecond, cancel2)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a cancelled body read ended cleanly")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled request stayed blocked on its backend's body")
	}
	resp.Body.Close()
	if got := len(dt.idle); got != 0 {
		t.Fatalf("%d interrupted connections went back to the idle list", got)
	}
}
