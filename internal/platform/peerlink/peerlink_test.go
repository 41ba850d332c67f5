package peerlink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
)

func peersFor(t *testing.T, key *auth.Key, name string) *auth.Peers {
	t.Helper()
	p, err := auth.NewPeers(key, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newKey(t *testing.T) *auth.Key {
	t.Helper()
	k, err := auth.ParseKey(auth.NewKeyText())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serve starts a peer listener (mutual TLS under key, or plain loopback
// when key is nil) serving links at /link behind the peer guard.
func serve(t *testing.T, key *auth.Key, lim Limits, h Handler) (*Server, string) {
	t.Helper()
	peers := peersFor(t, key, "server")
	srv := NewServer(h, lim, nil)
	mux := http.NewServeMux()
	mux.Handle("GET /link", srv)
	ts := httptest.NewUnstartedServer(peers.Guard(mux, auth.Limits{MaxBody: 1 << 20, MaxConcurrent: 4}, nil))
	if key != nil {
		ts.TLS = peers.ServerTLS()
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	return srv, ts.Listener.Addr().String()
}

func client(t *testing.T, key *auth.Key, maxFrame int) *Client {
	t.Helper()
	c := NewClient("/link", peersFor(t, key, "client").ClientTLS(), maxFrame)
	t.Cleanup(c.Close)
	return c
}

func echo(_ context.Context, req []byte) []byte { return append([]byte("re:"), req...) }

// Many concurrent calls share one link, and each gets its own answer.
func TestCallsShareOneLinkAndGetTheirOwnAnswers(t *testing.T) {
	for _, secure := range []bool{true, false} {
		t.Run(fmt.Sprint("tls=", secure), func(t *testing.T) {
			var key *auth.Key
			if secure {
				key = newKey(t)
			}
			var slow atomic.Int64
			srv, addr := serve(t, key, DefaultLimits(1<<20), func(ctx context.Context, req []byte) []byte {
				if bytes.HasPrefix(req, []byte("slow")) { // answers overtake each other
					slow.Add(1)
					time.Sleep(time.Millisecond)
				}
				return echo(ctx, req)
			})
			c := client(t, key, 1<<20)
			var wg sync.WaitGroup
			for i := range 200 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req := fmt.Sprintf("fast-%d", i)
					if i%3 == 0 {
						req = fmt.Sprintf("slow-%d", i)
					}
					resp, err := c.Call(context.Background(), addr, []byte(req))
					if err != nil || string(resp) != "re:"+req {
						t.Errorf("call %q: %q, %v", req, resp, err)
					}
				}()
			}
			wg.Wait()
			if n := srv.Links(); n != 1 {
				t.Fatalf("%d links for one peer", n)
			}
			if slow.Load() != 67 {
				t.Fatalf("%d slow requests served", slow.Load())
			}
		})
	}
}

// A process without the cluster key cannot open a link: the TLS
// handshake fails before any frame is read.
func TestLinkNeedsTheClusterKey(t *testing.T) {
	var served atomic.Int64
	_, addr := serve(t, newKey(t), DefaultLimits(1<<20), func(ctx context.Context, req []byte) []byte {
		served.Add(1)
		return echo(ctx, req)
	})
	c := client(t, newKey(t), 1<<20)
	if _, err := c.Call(context.Background(), addr, []byte("x")); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("call with another key: %v", err)
	}
	plain := NewClient("/link", nil, 1<<20)
	defer plain.Close()
	if _, err := plain.Call(context.Background(), addr, []byte("x")); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("call without TLS: %v", err)
	}
	if served.Load() != 0 {
		t.Fatalf("%d requests served to outsiders", served.Load())
	}
}

// A frame over the limit closes the link before its body is read; the
// next call opens a new one.
func TestOversizedFrameClosesTheLink(t *testing.T) {
	var served atomic.Int64
	_, addr := serve(t, nil, DefaultLimits(1024), func(ctx context.Context, req []byte) []byte {
		served.Add(1)
		return echo(ctx, req)
	})
	c := client(t, nil, 1<<20)
	if _, err := c.Call(context.Background(), addr, make([]byte, 2048)); !errors.Is(err, ErrLinkDown) {
		t.Fatalf("oversized call: %v", err)
	}
	if served.Load() != 0 {
		t.Fatal("an oversized request was served")
	}
	if resp, err := c.Call(context.Background(), addr, []byte("small")); err != nil || string(resp) != "re:small" {
		t.Fatalf("after the refusal: %q %v", resp, err)
	}
}

// Malformed frames from a peer close its link; the server goes on serving.
func TestMalformedFramesCloseTheLink(t *testing.T) {
	_, addr := serve(t, nil, DefaultLimits(1024), echo)
	for name, frame := range map[string][]byte{
		"short":      {0, 0, 0, 3, 1, 2, 3},
		"huge":       {0xff, 0xff, 0xff, 0xff},
		"truncated":  {0, 0, 0, 100, 1, 2},
		"zero bytes": {0, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			conn, r, err := upgrade(addr, "/link", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
			if name == "truncated" {
				conn.(*net.TCPConn).CloseWrite()
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := r.Read(make([]byte, 1)); err == nil || n != 0 {
				t.Fatalf("link still open after a %s frame (%d bytes, %v)", name, n, err)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("link not closed after a %s frame", name)
			}
		})
	}
	c := client(t, nil, 1<<20)
	if resp, err := c.Call(context.Background(), addr, []byte("ok")); err != nil || string(resp) != "re:ok" {
		t.Fatalf("after malformed links: %q %v", resp, err)
	}
}

// Only an upgrade request is taken over.
func TestPlainRequestIsRefused(t *testing.T) {
	_, addr := serve(t, nil, DefaultLimits(1024), echo)
	resp, err := http.Get("http://" + addr + "/link")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), Protocol) {
		t.Fatalf("plain GET: %d %s", resp.StatusCode, body)
	}
}

// The handler runs under the caller's remaining time.
func TestHandlerGetsTheCallersDeadline(t *testing.T) {
	left := make(chan time.Duration, 1)
	_, addr := serve(t, nil, DefaultLimits(1024), func(ctx context.Context, req []byte) []byte {
		dl, ok := ctx.Deadline()
		if !ok {
			left <- -1
		} else {
			left <- time.Until(dl)
		}
		return nil
	})
	c := client(t, nil, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Call(ctx, addr, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d := <-left; d <= 0 || d > 3*time.Second+time.Millisecond {
		t.Fatalf("handler's time left %v, caller gave 3s", d)
	}
	if _, err := c.Call(context.Background(), addr, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d := <-left; d != -1 {
		t.Fatalf("handler had a deadline (%v) the caller did not set", d)
	}
}

// A caller that gives up returns at once; the late answer is dropped and
// the link serves on.
func TestCallerGivesUp(t *testing.T) {
	release := make(chan struct{})
	_, addr := serve(t, nil, DefaultLimits(1024), func(ctx context.Context, req []byte) []byte {
		if string(req) == "stuck" {
			<-release
		}
		return echo(ctx, req)
	})
	c := client(t, nil, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, addr, []byte("stuck"))
		errc <- err
	}()
	if resp, err := c.Call(context.Background(), addr, []byte("a")); err != nil || string(resp) != "re:a" {
		t.Fatalf("call beside a stuck one: %q %v", resp, err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) && !errors.Is(err, ErrLinkDown) {
		t.Fatalf("given-up call: %v", err)
	}
	close(release)
	if resp, err := c.Call(context.Background(), addr, []byte("b")); err != nil || string(resp) != "re:b" {
		t.Fatalf("after the late answer: %q %v", resp, err)
	}
}

// Closing the server fails the calls waiting on its links, at once.
func TestServerCloseFailsWaitingCalls(t *testing.T) {
	entered := make(chan struct{})
	srv, addr := serve(t, nil, DefaultLimits(1024), func(ctx context.Context, req []byte) []byte {
		close(entered)
		<-ctx.Done() // the link's context ends when the server closes it
		return nil
	})
	c := client(t, nil, 1024)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), addr, []byte("x"))
		errc <- err
	}()
	<-entered
	srv.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrLinkDown) {
			t.Fatalf("call on a closed link: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call still waiting after the server closed")
	}
}

// One link never has more than MaxInFlight requests in its handlers.
func TestInFlightLimit(t *testing.T) {
	lim := DefaultLimits(1024)
	lim.MaxInFlight = 3
	var now, peak atomic.Int64
	_, addr := serve(t, nil, lim, func(ctx context.Context, req []byte) []byte {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(time.Millisecond)
		now.Add(-1)
		return echo(ctx, req)
	})
	c := client(t, nil, 1024)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Call(context.Background(), addr, []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak of %d requests in flight, limit 3", p)
	}
}

// No more than MaxLinks links are open at once.
func TestLinkLimit(t *testing.T) {
	lim := DefaultLimits(1024)
	lim.MaxLinks = 2
	srv, addr := serve(t, nil, lim, echo)
	var conns []net.Conn
	for range 2 {
		conn, _, err := upgrade(addr, "/link", nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	if _, _, err := upgrade(addr, "/link", nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("third link: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}
	// Once they are gone, a link is made again.
	deadline := time.Now().Add(5 * time.Second)
	for srv.Links() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	conn, r, err := upgrade(addr, "/link", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(appendRequest(7, 0, []byte("hi"))); err != nil {
		t.Fatal(err)
	}
	body, err := readFrame(bufio.NewReader(r), 1024)
	if err != nil || binary.BigEndian.Uint64(body) != 7 || string(body[answerHeader:]) != "re:hi" {
		t.Fatalf("raw answer %q %v", body, err)
	}
}

// A link closed for idleness is replaced by the next call, which succeeds:
// closing a quiet link is never a failure of the peer.
func TestIdleLinkIsReplaced(t *testing.T) {
	srv, addr := serve(t, nil, DefaultLimits(1024), echo)
	c := client(t, nil, 1024)
	c.idle = 20 * time.Millisecond
	if _, err := c.Call(context.Background(), addr, []byte("a")); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	first := c.links[addr]
	c.mu.Unlock()
	select {
	case <-first.down:
	case <-time.After(10 * time.Second):
		t.Fatal("an idle link was not closed")
	}
	for i := range 20 {
		if resp, err := c.Call(context.Background(), addr, []byte(fmt.Sprint(i))); err != nil || string(resp) != fmt.Sprint("re:", i) {
			t.Fatalf("call %d after the idle close: %q %v", i, resp, err)
		}
	}
	_ = srv
}

// Frame buffers have the length asked for whatever the pool hands back,
// and the pool never holds one larger than pooledFrame.
func TestFrameBuffers(t *testing.T) {
	for _, n := range []int{0, 1, 4 << 10, 4<<10 + 1, 40 << 10, pooledFrame, pooledFrame + 1, 1 << 20} {
		for range 3 {
			f := newFrame(n)
			if len(f) != n {
				t.Fatalf("newFrame(%d) has length %d", n, len(f))
			}
			if n <= pooledFrame && cap(f) > pooledFrame {
				t.Fatalf("newFrame(%d) has capacity %d, over the pooled limit %d", n, cap(f), pooledFrame)
			}
			releaseFrame(f)
		}
	}
	f := appendRequest(7, 100, []byte("payload"))
	if len(f) != 4+requestHeader+len("payload") || string(f[4+requestHeader:]) != "payload" {
		t.Fatalf("request frame %q", f)
	}
}
