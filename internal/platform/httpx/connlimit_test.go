package httpx

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

func startLimited(t *testing.T, maxConns, perClient int) *Server {
	t.Helper()
	srv := NewServer(ServerConfig{Addr: "127.0.0.1:0", MaxConns: maxConns, MaxConnsPerClient: perClient},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }), slog.New(slog.DiscardHandler))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}

// dialFrom opens a connection from a given loopback address and, with
// request, sends one keep-alive request and reads its answer (leaving the
// connection idle). It reports whether the server served it.
func dialFrom(t *testing.T, from, addr string, request bool) (net.Conn, bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !request {
		return c, true
	}
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, false
	}
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Time{})
	return c, resp.StatusCode == 200
}

// One client address cannot hold more than its share.
func TestConnectionsPerClientAreCapped(t *testing.T) {
	srv := startLimited(t, 100, 5)
	for i := 0; i < 5; i++ {
		if _, ok := dialFrom(t, "127.0.0.1", srv.Addr(), true); !ok {
			t.Fatalf("connection %d of a client's 5 was refused", i+1)
		}
	}
	if _, ok := dialFrom(t, "127.0.0.1", srv.Addr(), true); ok {
		t.Fatal("a client's sixth connection was served")
	}
	if _, ok := dialFrom(t, "127.0.0.2", srv.Addr(), true); !ok {
		t.Fatal("another client was refused")
	}
	if srv.RefusedConns() == 0 {
		t.Fatal("the refusal was not counted")
	}
}

// The observed attack: thousands of idle keep-alive connections took every
// descriptor and /healthz timed out. Near the cap, idle connections are
// closed to make room, and the server keeps answering.
func TestIdleConnectionsMakeRoom(t *testing.T) {
	srv := startLimited(t, 20, 1000)
	for i := 0; i < 40; i++ {
		if _, ok := dialFrom(t, "127.0.0.1", srv.Addr(), true); !ok {
			t.Fatalf("request on connection %d (of 40, cap 20) was not served: idle connections did not make room", i+1)
		}
	}
	// Silent connections (no request yet) are not idle: they are held
	// until ReadHeaderTimeout, and the per-client cap is what bounds them.
}
