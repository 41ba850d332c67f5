package lb

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ServeTCP is the L4 mode: each client connection is joined to a backend
// connection and the bytes are copied both ways (on Linux, io.Copy
// between two TCP connections splices in the kernel). A backend that
// refuses the dial is skipped for another, which is always safe: nothing
// has been sent. A connection counts in flight on its backend while it
// lasts, so least-conn balances connections. At ctx's end the listener
// closes and open connections get drain to finish.
func (lb *Balancer) ServeTCP(ctx context.Context, addr string, drain time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	logger.Info("lb up (tcp)", "addr", ln.Addr().String(), "policy", lb.Pool.cfg.Policy)
	var wg sync.WaitGroup
	conns := map[net.Conn]bool{}
	var mu sync.Mutex
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors: let some close
			continue
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			lb.joinTCP(ctx, c)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		<-done
	}
	return nil
}

func (lb *Balancer) joinTCP(ctx context.Context, client net.Conn) {
	defer client.Close()
	key, _, _ := net.SplitHostPort(client.RemoteAddr().String())
	tried := map[*backend]bool{}
	var upstream net.Conn
	var b *backend
	for try := 0; try <= lb.Proxy.cfg.MaxRetries; try++ {
		var err error
		b, err = lb.Pool.pick(key, tried)
		if err != nil {
			return
		}
		tried[b] = true
		start := time.Now()
		d := net.Dialer{Timeout: lb.Pool.cfg.DialTimeout}
		upstream, err = d.DialContext(ctx, "tcp", b.url.Host)
		lb.Pool.observe(b, err == nil, time.Since(start))
		if err == nil {
			break
		}
		upstream = nil
	}
	if upstream == nil {
		return
	}
	defer upstream.Close()
	b.inFlight.Add(1)
	b.requests.Add(1)
	defer b.inFlight.Add(-1)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // pass the half-close on
		}
		done <- struct{}{}
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
	<-done
	<-done
}
