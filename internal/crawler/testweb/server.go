package testweb

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ServeConfig places the web on the machine.
type ServeConfig struct {
	// BaseIP is the first host's address; host i listens on BaseIP + i + 1
	// (a loopback range such as 127.20.0.0 on Linux, where all of
	// 127.0.0.0/8 reaches the loopback interface).
	BaseIP netip.Addr
	// Port is every host's port; 0 picks a free one (the same for all).
	Port int
}

// Server serves a Web: one listener per host address, the hosts' pages,
// and a log of every fetch.
type Server struct {
	web    *Web
	cfg    ServeConfig
	port   int
	log    *FetchLog
	srv    *http.Server
	lns    []net.Listener
	done   sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

// Start listens on every host's address and serves until Close.
func Start(web *Web, cfg ServeConfig, logger *slog.Logger) (*Server, error) {
	if !cfg.BaseIP.Is4() || !cfg.BaseIP.IsLoopback() {
		return nil, fmt.Errorf("testweb: the base address must be IPv4 loopback (127.x.y.z), got %v", cfg.BaseIP)
	}
	last := cfg.BaseIP
	for range web.cfg.Hosts + 1 {
		last = last.Next()
	}
	if !last.IsLoopback() {
		return nil, fmt.Errorf("testweb: %d hosts from %v leave 127.0.0.0/8", web.cfg.Hosts, cfg.BaseIP)
	}
	s := &Server{web: web, cfg: cfg, log: &FetchLog{}, closed: make(chan struct{})}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	port := cfg.Port
	for i := 0; i < web.cfg.Hosts; i++ {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(s.Addr(i), uint16(port)).String())
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("testweb: host %d: %w", i, err)
		}
		if port == 0 {
			port = ln.Addr().(*net.TCPAddr).Port
		}
		s.lns = append(s.lns, ln)
	}
	s.port = port
	web.port = port
	for _, ln := range s.lns {
		s.done.Add(1)
		go func() { defer s.done.Done(); _ = s.srv.Serve(ln) }()
	}
	return s, nil
}

// Addr is host i's address.
func (s *Server) Addr(i int) netip.Addr {
	a := s.cfg.BaseIP
	for range i + 1 {
		a = a.Next()
	}
	return a
}

// Port is the hosts' port.
func (s *Server) Port() int { return s.port }

// Web is the model the server serves.
func (s *Server) Web() *Web { return s.web }

// Log is the fetch log.
func (s *Server) Log() *FetchLog { return s.log }

// Resolve is the web's name table: host i's name to its address.
func (s *Server) Resolve(name string) (netip.Addr, bool) {
	i, ok := s.web.HostIndex(name)
	if !ok {
		return netip.Addr{}, false
	}
	return s.Addr(i), true
}

// Close stops serving; fetches in progress (a stream, a slow page) end.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		for _, ln := range s.lns {
			_ = ln.Close()
		}
		s.done.Wait()
	})
}

// ServeHTTP answers as the host named in the Host header, logging the
// fetch from its arrival to the end of its answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	i, ok := s.web.HostIndex(r.Host)
	path := r.URL.RequestURI()
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "no such host here", http.StatusMisdirectedRequest)
		return
	}
	a := s.web.Answer(i, path)
	status, n := s.write(r.Context(), w, a)
	s.log.add(Fetch{Host: i, Path: path, Start: start, End: time.Now(), Status: status, Bytes: n, Agent: r.UserAgent()})
}

func (s *Server) write(ctx context.Context, w http.ResponseWriter, a Answer) (int, int64) {
	if a.Delay > 0 {
		t := time.NewTimer(a.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 499, 0 // the client gave up first
		case <-s.closed:
			return 499, 0
		}
	}
	if a.Location != "" {
		w.Header().Set("Location", a.Location)
	}
	w.Header().Set("Content-Type", a.ContentType)
	w.WriteHeader(a.Status)
	switch {
	case a.Endless:
		chunk := []byte(strings.Repeat("<p>more and more and more</p>\n", 512))
		var n int64
		for n < 64<<30 { // 64 GiB: for ever, as far as a crawler is concerned
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil || ctx.Err() != nil {
				break
			}
			select {
			case <-s.closed:
				return a.Status, n
			default:
			}
		}
		return a.Status, n
	case a.HugeBytes > 0:
		chunk := []byte(strings.Repeat("<p>a huge page goes on</p>\n", 1024))
		var n int64
		for n < int64(a.HugeBytes) {
			m, err := w.Write(chunk[:min(len(chunk), a.HugeBytes-int(n))])
			n += int64(m)
			if err != nil {
				break
			}
		}
		return a.Status, n
	}
	m, _ := w.Write(a.Body)
	return a.Status, int64(m)
}
