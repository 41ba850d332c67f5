package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerConfig holds the limits of a Server. Zero values take the defaults.
type ServerConfig struct {
	Addr              string
	ReadHeaderTimeout time.Duration // default 5s
	ReadTimeout       time.Duration // default 15s
	WriteTimeout      time.Duration // default 30s
	IdleTimeout       time.Duration // default 120s
	DrainTimeout      time.Duration // default 10s: how long in-flight requests get at shutdown
	// TLS, when set, serves HTTPS on the listener (peer listeners: mutual
	// TLS from the auth package). Handshakes happen per connection, so a
	// caller that fails one never reaches the handler.
	TLS *tls.Config
	// MaxConns and MaxConnsPerClient cap open connections, in all (default:
	// 3/4 of the descriptor limit, at most 10,000) and per client IP address
	// (default 2,048); near MaxConns, idle keep-alive connections are closed.
	MaxConns, MaxConnsPerClient int
}

// Server is an http.Server that binds first and shuts down gracefully.
type Server struct {
	cfg     ServerConfig
	srv     *http.Server
	ln      net.Listener
	limiter *connLimiter
	logger  *slog.Logger
}

// NewServer builds a server for h; call Listen, then Serve.
func NewServer(cfg ServerConfig, h http.Handler, logger *slog.Logger) *Server {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ReadHeaderTimeout, 5*time.Second)
	def(&cfg.ReadTimeout, 15*time.Second)
	def(&cfg.WriteTimeout, 30*time.Second)
	def(&cfg.IdleTimeout, 120*time.Second)
	def(&cfg.DrainTimeout, 10*time.Second)
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultMaxConns()
	}
	if cfg.MaxConnsPerClient <= 0 {
		cfg.MaxConnsPerClient = min(2048, cfg.MaxConns)
	}
	return &Server{
		cfg:    cfg,
		logger: logger,
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
	}
}

// SetHandler sets the handler; call it before Serve.
func (s *Server) SetHandler(h http.Handler) { s.srv.Handler = h }

// Listen binds the address so that Addr is known before serving.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("httpx: listen %s: %w", s.cfg.Addr, err)
	}
	s.limiter = newConnLimiter(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerClient)
	s.srv.ConnState = s.limiter.connState
	ln = s.limiter
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.ln = ln
	return nil
}

// Close releases the listener of a server that will not Serve.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	return s.ln.Close()
}

// RefusedConns is how many connections the caps turned away.
func (s *Server) RefusedConns() uint64 {
	if s.limiter == nil {
		return 0
	}
	return s.limiter.refused.Load()
}

// Addr is the bound address (host:port), valid after Listen.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then drains in-flight requests for up to the
// drain timeout. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	scheme := "http://"
	if s.cfg.TLS != nil {
		scheme = "https://"
	}
	s.logger.Info("listening", "addr", scheme+s.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("httpx: serve: %w", err)
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	s.logger.Info("shutting down: draining in-flight requests", "timeout", s.cfg.DrainTimeout)
	if err := s.srv.Shutdown(drain); err != nil {
		_ = s.srv.Close()
		return fmt.Errorf("httpx: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("httpx: serve: %w", err)
	}
	return nil
}

// Check is one readiness check: a dependency that must answer.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Ops serves /healthz, /readyz and /metrics, and passes every other path to
// app. It is a switch rather than a second ServeMux because it sits in front
// of every request, redirects included.
func Ops(app http.Handler, gatherer prometheus.Gatherer, checks []Check) http.Handler {
	metrics := promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h func(http.ResponseWriter, *http.Request)
		switch r.URL.Path {
		case "/healthz":
			h = func(w http.ResponseWriter, r *http.Request) {
				WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			}
		case "/readyz":
			h = func(w http.ResponseWriter, r *http.Request) { readyz(w, r, checks) }
		case "/metrics":
			h = metrics.ServeHTTP
		default:
			app.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			WriteJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: "method " + r.Method + " is not allowed on " + r.URL.Path})
			return
		}
		h(w, r)
	})
}

func readyz(w http.ResponseWriter, r *http.Request, checks []Check) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	failed := map[string]string{}
	for _, c := range checks {
		if err := c.Fn(ctx); err != nil {
			failed[c.Name] = err.Error()
		}
	}
	if len(failed) > 0 {
		names := make([]string, 0, len(failed))
		for n := range failed {
			names = append(names, n)
		}
		sort.Strings(names)
		WriteJSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "unavailable", "error": "not ready: " + names[0] + ": " + failed[names[0]], "failed": failed})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
