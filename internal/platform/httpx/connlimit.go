package httpx

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
)

// connLimiter caps a listener's open connections, in all and per client
// address, so that nobody can take every file descriptor by opening
// connections and leaving them idle (after which even /healthz cannot be
// served). A connection over a cap is accepted and closed at once — left
// in the kernel's backlog it would only wait. Near the global cap
// (reapAt), connections idle between requests are closed to make room:
// HTTP clients reopen them when they need them again.
type connLimiter struct {
	net.Listener
	max, perClient, reapAt int

	mu      sync.Mutex
	open    int
	byIP    map[string]int
	idle    map[net.Conn]net.Conn // keep-alive connections between requests (ConnState) → the connection to close
	refused atomic.Uint64
}

func newConnLimiter(l net.Listener, max, perClient int) *connLimiter {
	return &connLimiter{Listener: l, max: max, perClient: perClient, reapAt: max * 9 / 10,
		byIP: map[string]int{}, idle: map[net.Conn]net.Conn{}}
}

// defaultMaxConns leaves a quarter of the process's descriptors for its
// files and engines, up to 10,000 connections.
func defaultMaxConns() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 {
		return 1024
	}
	return int(min(lim.Cur*3/4, 10000))
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		l.reapIfCrowded()
		l.mu.Lock()
		if l.open >= l.max || l.byIP[ip] >= l.perClient {
			l.mu.Unlock()
			l.refused.Add(1)
			c.Close()
			continue
		}
		l.open++
		l.byIP[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

// reapIfCrowded closes every idle keep-alive connection when the listener
// is near its cap. They are closed here, before the newcomer is judged, so
// that their slots are free for it; the raw connection is closed (not a
// TLS layer over it, whose close_notify could wait on a stuck peer).
func (l *connLimiter) reapIfCrowded() {
	l.mu.Lock()
	if l.open < l.reapAt {
		l.mu.Unlock()
		return
	}
	reap := make([]net.Conn, 0, len(l.idle))
	for c, raw := range l.idle {
		reap = append(reap, raw)
		delete(l.idle, c)
	}
	l.mu.Unlock()
	for _, raw := range reap {
		raw.Close() // takes l.mu through limitedConn
	}
}

// connState is the http.Server's ConnState hook: it tracks idleness.
func (l *connLimiter) connState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle {
		raw := c
		if t, ok := c.(interface{ NetConn() net.Conn }); ok { // a TLS connection over ours
			raw = t.NetConn()
		}
		l.idle[c] = raw
	} else {
		delete(l.idle, c)
	}
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.open--
		if c.l.byIP[c.ip]--; c.l.byIP[c.ip] <= 0 {
			delete(c.l.byIP, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
