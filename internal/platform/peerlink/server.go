package peerlink

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Handler serves one request of a peer. It must not panic on any input:
// what a peer sends is validated before it is acted on.
type Handler func(ctx context.Context, req []byte) []byte

// Limits bound what the peers of one node may hold open and send.
type Limits struct {
	MaxFrame    int           // bytes of one request
	MaxInFlight int           // requests of one link served at once
	MaxLinks    int           // links open at once
	IdleTimeout time.Duration // a link without a frame for this long is closed
}

// DefaultLimits suit a node's replica traffic.
func DefaultLimits(maxFrame int) Limits {
	return Limits{MaxFrame: maxFrame, MaxInFlight: 256, MaxLinks: 64, IdleTimeout: 2 * time.Minute}
}

// Server serves links: mount it (behind auth.Peers.Guard) on the peer
// listener at the path the Client is given.
type Server struct {
	handle Handler
	lim    Limits
	log    *slog.Logger

	mu     sync.Mutex
	links  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server that answers each request with handle.
func NewServer(handle Handler, lim Limits, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{handle: handle, lim: lim, log: logger, links: map[net.Conn]struct{}{}}
}

// ServeHTTP takes an upgrade request over and serves the link on its own
// goroutine, so that the HTTP handler (and the guard's slot) is released.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), Protocol) {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "want Upgrade: %s", Protocol))
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "this connection cannot be taken over (HTTP/2?)"))
		return
	}
	s.mu.Lock()
	full := s.closed || len(s.links) >= s.lim.MaxLinks
	s.mu.Unlock()
	if full {
		httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "%d peer links open; retry", s.lim.MaxLinks))
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return
	}
	// The link takes its slot before the peer is told it has one: with
	// the 101 written first, a peer could open another link in between and
	// be let in past MaxLinks, only to be cut off.
	s.mu.Lock()
	if s.closed || len(s.links) >= s.lim.MaxLinks {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.links[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.links, conn)
			s.mu.Unlock()
			s.wg.Done()
		}()
		_ = conn.SetDeadline(time.Time{}) // the HTTP server's deadlines were for one request
		if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+Protocol+"\r\n\r\n"); err != nil {
			conn.Close()
			return
		}
		s.serve(conn, rw.Reader)
	}()
}

// serve reads requests until the link fails, a frame breaks a limit, or
// the server closes; it returns once every request of the link is done.
func (s *Server) serve(conn net.Conn, r *bufio.Reader) {
	ctx, cancel := context.WithCancel(context.Background())
	w := newFrameWriter(conn, s.lim.MaxInFlight)
	slots := make(chan struct{}, max(s.lim.MaxInFlight, 1))
	var inflight sync.WaitGroup
	defer func() {
		cancel()
		inflight.Wait()
		w.close()
		<-w.done // the writer closes conn
	}()
	for {
		if s.lim.IdleTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(s.lim.IdleTimeout))
		}
		body, err := readFrame(r, requestHeader+s.lim.MaxFrame)
		if err != nil {
			if err != io.EOF && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("peer link closed", "peer", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		if len(body) < requestHeader {
			s.log.Warn("peer link closed: short frame", "peer", conn.RemoteAddr().String(), "bytes", len(body))
			return
		}
		id := binary.BigEndian.Uint64(body)
		timeout := time.Duration(binary.BigEndian.Uint32(body[8:])) * time.Millisecond
		req := body[requestHeader:]
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		inflight.Add(1)
		go func() {
			defer func() { <-slots; inflight.Done() }()
			rctx, done := ctx, context.CancelFunc(func() {})
			if timeout > 0 {
				rctx, done = context.WithTimeout(ctx, timeout)
			}
			resp := s.handle(rctx, req)
			done()
			_ = w.send(appendAnswer(id, resp)) // a failed writer ends the link's reads too
		}()
	}
}

// Close closes every link and waits for their requests to finish.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.links {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Links is the number of links open.
func (s *Server) Links() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.links)
}
