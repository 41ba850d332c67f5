package peerlink

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// ErrLinkDown is returned for a call whose link failed or closed before
// its answer came.
var ErrLinkDown = errors.New("peerlink: link down")

// Client makes calls to peers, over one link per peer address, dialled on
// first use and again after a failure.
type Client struct {
	path     string
	tls      *tls.Config // nil: plain TCP (loopback mode)
	maxFrame int
	idle     time.Duration

	mu     sync.Mutex
	links  map[string]*link
	closed bool
}

// NewClient calls peers at path on their peer listeners, over TLS with tlsConfig
// (auth.Peers.ClientTLS; nil without a cluster key). maxFrame bounds an
// answer.
func NewClient(path string, tlsConfig *tls.Config, maxFrame int) *Client {
	return &Client{path: path, tls: tlsConfig, maxFrame: maxFrame, idle: time.Minute, links: map[string]*link{}}
}

// Call sends req to the peer at addr and waits for its answer or ctx. Any
// error means the answer did not come: the peer was not reached, the link
// failed, or ctx ended first.
//
// A call that found its link already closing (idle, or failed a moment
// ago) before its request was queued is made once more on a new link: it
// never reached the peer, so the peer is not at fault.
func (c *Client) Call(ctx context.Context, addr string, req []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		l, err := c.link(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, sent, err := l.call(ctx, req)
		if err == nil || sent || attempt > 0 || ctx.Err() != nil {
			return resp, err
		}
	}
}

func (c *Client) link(ctx context.Context, addr string) (*link, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: client closed", ErrLinkDown)
	}
	l := c.links[addr]
	if l == nil || !l.usable() {
		l = &link{ready: make(chan struct{}), pending: map[uint64]chan []byte{}, down: make(chan struct{})}
		c.links[addr] = l
		c.mu.Unlock()
		// Callers that arrive while this one dials wait on ready: one dial
		// per peer, not one per waiting call.
		go l.dial(c, addr)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: dialling %s: %v", ErrLinkDown, addr, ctx.Err())
	}
	if l.dialErr != nil {
		return nil, l.dialErr
	}
	return l, nil
}

// Close closes every link; calls in flight fail.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	links := c.links
	c.links = map[string]*link{}
	c.mu.Unlock()
	for _, l := range links {
		l.shut(fmt.Errorf("%w: client closed", ErrLinkDown))
	}
}

// link is one connection to a peer and the calls waiting on it.
type link struct {
	ready   chan struct{} // closed once dialled (or failed to)
	dialErr error
	conn    net.Conn
	w       *frameWriter

	mu       sync.Mutex
	nextID   uint64
	pending  map[uint64]chan []byte
	lastUsed time.Time
	err      error
	down     chan struct{} // closed when the link failed or closed
	downOnce sync.Once
}

const dialTimeout = 2 * time.Second

func (l *link) dial(c *Client, addr string) {
	defer close(l.ready)
	conn, r, err := upgrade(addr, c.path, c.tls)
	if err != nil {
		l.dialErr = fmt.Errorf("%w: %s: %v", ErrLinkDown, addr, err)
		l.shut(l.dialErr)
		return
	}
	l.mu.Lock()
	if l.err != nil { // the client closed while this dialled
		l.mu.Unlock()
		conn.Close()
		l.dialErr = l.err
		return
	}
	l.conn, l.w, l.lastUsed = conn, newFrameWriter(conn, 1024), time.Now()
	l.mu.Unlock()
	go l.read(r, c.maxFrame)
	go func() {
		<-l.w.done
		l.shut(fmt.Errorf("%w: %s: writing: %v", ErrLinkDown, addr, l.w.err))
	}()
	go l.closeWhenIdle(c.idle)
}

// upgrade dials addr and asks for a link at path.
func upgrade(addr, path string, tlsConfig *tls.Config) (net.Conn, *bufio.Reader, error) {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	var (
		conn net.Conn
		err  error
	)
	if tlsConfig != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: tlsConfig}).Dial("tcp", addr)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: peer\r\nConnection: Upgrade\r\nUpgrade: "+Protocol+"\r\n\r\n"); err != nil {
		conn.Close()
		return nil, nil, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		conn.Close()
		return nil, nil, fmt.Errorf("upgrade refused: %s: %s", resp.Status, body)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, r, nil
}

// call sends req and waits for its answer; sent reports whether the
// request was queued on the link (and so may have reached the peer).
func (l *link) call(ctx context.Context, req []byte) (resp []byte, sent bool, err error) {
	timeoutMs := uint32(0)
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return nil, false, fmt.Errorf("%w: %v", ErrLinkDown, context.DeadlineExceeded)
		}
		timeoutMs = uint32(min(left.Milliseconds()+1, math.MaxUint32))
	}
	answer := make(chan []byte, 1)
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return nil, false, err
	}
	l.nextID++
	id := l.nextID
	l.pending[id] = answer
	l.lastUsed = time.Now()
	l.mu.Unlock()
	forget := func() {
		l.mu.Lock()
		delete(l.pending, id)
		l.mu.Unlock()
	}
	if err := l.w.send(appendRequest(id, timeoutMs, req)); err != nil {
		forget()
		return nil, false, fmt.Errorf("%w: %v", ErrLinkDown, err)
	}
	select {
	case resp := <-answer:
		return resp, true, nil
	case <-l.down:
		forget()
		select {
		case resp := <-answer: // it came just before the link went down
			return resp, true, nil
		default:
		}
		l.mu.Lock()
		err := l.err
		l.mu.Unlock()
		return nil, true, err
	case <-ctx.Done():
		forget()
		return nil, true, fmt.Errorf("%w: %v", ErrLinkDown, ctx.Err())
	}
}

// read hands each answer to its caller until the link fails.
func (l *link) read(r *bufio.Reader, maxFrame int) {
	for {
		body, err := readFrame(r, answerHeader+maxFrame)
		if err == nil && len(body) < answerHeader {
			err = fmt.Errorf("short frame of %d bytes", len(body))
		}
		if err != nil {
			l.shut(fmt.Errorf("%w: reading: %v", ErrLinkDown, err))
			return
		}
		id := binary.BigEndian.Uint64(body)
		l.mu.Lock()
		answer := l.pending[id]
		delete(l.pending, id)
		l.mu.Unlock()
		if answer != nil {
			answer <- body[answerHeader:]
		}
	}
}

// closeWhenIdle closes the link once it has had no call in flight and none
// made for idle, before the server's own idle timeout would.
func (l *link) closeWhenIdle(idle time.Duration) {
	t := time.NewTicker(idle / 4)
	defer t.Stop()
	for {
		select {
		case <-l.down:
			return
		case <-t.C:
			l.mu.Lock()
			quiet := len(l.pending) == 0 && time.Since(l.lastUsed) > idle
			if quiet {
				l.err = fmt.Errorf("%w: closed when idle", ErrLinkDown)
			}
			l.mu.Unlock()
			if quiet {
				l.shut(nil)
				return
			}
		}
	}
}

// shut marks the link down (err, unless one was already recorded), closes
// its connection and wakes every waiting caller.
func (l *link) shut(err error) {
	l.downOnce.Do(func() {
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		conn, w := l.conn, l.w
		l.mu.Unlock()
		if conn != nil {
			conn.Close()
			w.close()
		}
		close(l.down)
	})
}

// usable reports whether the link may take a call: it has not failed and
// is not closing.
func (l *link) usable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil
}
