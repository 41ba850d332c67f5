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
	idle    map[net.Conn]struct{} // keep-alive connections between requests (ConnState)
	refused atomic.Uint64
}

func newConnLimiter(l net.Listener, max, perClient int) *connLimiter {
	return &connLimiter{Listener: l, max: max, perClient: perClient, reapAt: max * 9 / 10,
		byIP: map[string]int{}, idle: map[net.Conn]struct{}{}}
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
		l.mu.Lock()
		if l.open >= l.reapAt {
			l.reapIdleLocked()
		}
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

// reapIdleLocked closes every idle keep-alive connection. Closing them
// makes their ConnState go to closed, which releases their slots.
func (l *connLimiter) reapIdleLocked() {
	for c := range l.idle {
		go c.Close() // Close takes l.mu through limitedConn
		delete(l.idle, c)
	}
}

// connState is the http.Server's ConnState hook: it tracks idleness.
func (l *connLimiter) connState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s == http.StateIdle {
		l.idle[c] = struct{}{}
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
