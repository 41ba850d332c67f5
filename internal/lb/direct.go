package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// directTransport sends HTTP/1.1 requests to one backend over keep-alive
// connections, each used by one request at a time from start to end on
// the caller's goroutine: write the request, read the answer's head, hand
// the body back; the connection returns to the idle list when the body has
// been read to its end.
//
// Why not http.Transport: a profile of the proxy at its peak put a fifth
// of the CPU in the standard transport's per-connection reader and writer
// goroutines and the channel hand-offs between them and the request's
// goroutine (three goroutines touch every request). A balancer's backends
// are few, known and plain HTTP/1.1, so the general transport's work —
// proxies, TLS, HTTP/2, transparent gzip, connection coalescing — buys
// nothing here. Upgrades (WebSocket) and https backends still go through
// http.Transport, which returns a switched connection as a writable body.
type directTransport struct {
	addr    string
	dialer  net.Dialer
	maxIdle int
	idleFor time.Duration
	now     func() time.Time

	mu     sync.Mutex
	idle   []*directConn // most recently used last
	closed bool
}

type directConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

func newDirectTransport(addr string, dialTimeout time.Duration, maxIdle int) *directTransport {
	return &directTransport{
		addr:    addr,
		dialer:  net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second},
		maxIdle: maxIdle,
		idleFor: 90 * time.Second,
		now:     time.Now,
	}
}

// errStaleConn: a reused connection failed before any byte of an answer —
// the backend had closed it while idle. The request never reached the
// backend's handler, so it may be sent again on a fresh connection
// whatever its method.
var errStaleConn = errors.New("lb: idle backend connection was closed")

// RoundTrip sends r and returns the answer with its body still to read.
func (t *directTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	for fresh := false; ; fresh = true {
		c, reused, err := t.get(r.Context(), fresh)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(c, r)
		if err == nil {
			return resp, nil
		}
		if !(reused && errors.Is(err, errStaleConn)) || !replayable(r) {
			return nil, err
		}
	}
}

// replayable is http.Transport's rule for sending a request again after
// its connection died unanswered: the backend may have run it before the
// connection closed, so only a request that is safe to run twice — GET,
// HEAD, OPTIONS, TRACE, or one carrying an idempotency key — with a body
// that can be produced again.
func replayable(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}

// get takes the newest idle connection (unless fresh) or dials one.
func (t *directTransport) get(ctx context.Context, fresh bool) (*directConn, bool, error) {
	if !fresh {
		now := t.now()
		t.mu.Lock()
		for n := len(t.idle); n > 0; n = len(t.idle) {
			c := t.idle[n-1]
			t.idle = t.idle[:n-1]
			if now.Sub(c.idleFrom) < t.idleFor {
				t.mu.Unlock()
				return c, true, nil
			}
			c.Close()
		}
		t.mu.Unlock()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	return &directConn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, false, nil
}

// put returns a connection whose exchange ended cleanly.
func (t *directTransport) put(c *directConn) {
	c.idleFrom = t.now()
	t.mu.Lock()
	if t.closed || len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

// CloseIdleConnections closes the idle list; connections in use close
// when their exchange ends.
func (t *directTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// exchange writes r on c and reads the answer's head. Cancelling r's
// context (the client left, the answer timeout fired) interrupts a write
// or read in progress by moving the connection's deadline to now.
func (t *directTransport) exchange(c *directConn, r *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(r.Context(), func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.Close()
		if ctxErr := r.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	err := r.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		// A backend may answer and close before taking a whole body (a
		// 413, say): its answer, if one came, is the truer error.
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if resp, rerr := http.ReadResponse(c.br, r); rerr == nil && resp.StatusCode >= 200 {
			_ = c.SetReadDeadline(time.Time{})
			resp.Body = &directBody{rc: resp.Body, c: c, t: t, stop: stop, reuse: false}
			return resp, nil
		}
		return fail(fmt.Errorf("write to backend: %w", errors.Join(errStaleConn, err)))
	}
	if _, err := c.br.Peek(1); err != nil {
		return fail(errors.Join(errStaleConn, err))
	}
	resp, err := http.ReadResponse(c.br, r)
	// 1xx answers other than 101 are interim (100 Continue, 103 Early
	// Hints): the final one follows on the same connection.
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(c.br, r)
	}
	if err != nil {
		return fail(fmt.Errorf("read from backend: %w", err))
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Upgrades are routed to http.Transport; a backend switching
		// unasked breaks the exchange.
		resp.Body.Close()
		return fail(errors.New("backend switched protocols unasked"))
	}
	reuse := !resp.Close && !r.Close
	if resp.Body == http.NoBody {
		t.finish(c, stop, reuse)
		return resp, nil
	}
	resp.Body = &directBody{rc: resp.Body, c: c, t: t, stop: stop, reuse: reuse}
	return resp, nil
}

// finish ends an exchange: the connection goes back to the idle list if
// both sides keep it alive and the context did not cut it.
func (t *directTransport) finish(c *directConn, stop func() bool, reuse bool) {
	if !stop() || !reuse {
		// stop false: the cancel hook ran (or is running) and set the
		// deadline; the connection is not reusable.
		c.Close()
		return
	}
	t.put(c)
}

// directBody is an answer's body; read to its end it frees the connection
// for the next request, closed early it closes the connection (the rest
// of the answer would be in the way).
type directBody struct {
	rc    io.ReadCloser
	c     *directConn
	t     *directTransport
	stop  func() bool
	reuse bool
	mu    sync.Mutex
	done  bool
}

func (b *directBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.end(true)
	}
	return n, err
}

func (b *directBody) Close() error {
	err := b.rc.Close()
	b.end(false)
	return err
}

func (b *directBody) end(atEOF bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	b.t.finish(b.c, b.stop, b.reuse && atEOF)
}
