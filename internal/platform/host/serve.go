package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Logger builds the process logger and makes it the slog default, so that
// packages logging through slog's top-level functions share it.
func Logger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	l := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(l)
	return l
}

// Instrument wraps a system handler with the shared middleware.
func (d *Deps) Instrument(sys System) http.Handler {
	limit := d.Engines.MaxBody
	if limit <= 0 {
		limit = httpx.DefaultMaxBody
	}
	if bl, ok := sys.(BodyLimiter); ok && bl.MaxBody() > limit {
		limit = bl.MaxBody()
	}
	return httpx.Instrument(sys.Name(), d.Metrics, limit, d.Logger, sys.Handler())
}

// Listen binds the HTTP address before any engine is opened or system
// built: a bad or busy address leaves nothing behind, and a system knows
// its public URL even when the port was ":0". A busy port's error names
// the flag that moves it.
func Listen(e Engines, logger *slog.Logger) (*httpx.Server, error) {
	srv := httpx.NewServer(httpx.ServerConfig{Addr: e.Addr}, nil, logger)
	if err := srv.Listen(); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s is in use (another scalelab?): choose another address with --addr or $SCALELAB_ADDR", e.Addr)
		}
		return nil, fmt.Errorf("cannot listen on %q (--addr, $SCALELAB_ADDR): %w", e.Addr, err)
	}
	return srv, nil
}

// PublicURL is --public-url, or http://ADDR of the bound server.
func (d *Deps) PublicURL(srv *httpx.Server) string {
	if d.Engines.PublicURL != "" {
		return strings.TrimRight(d.Engines.PublicURL, "/")
	}
	return BaseURL(srv.Addr())
}

// Run serves app (already holding every system) behind the operational
// endpoints until ctx ends, then shuts down in order: HTTP drain, systems'
// Close, engines' Close.
func Run(ctx context.Context, d *Deps, srv *httpx.Server, systems []System, app http.Handler) error {
	checks := d.Checks()
	for _, s := range systems {
		for _, c := range s.Checks() {
			checks = append(checks, httpx.Check{Name: s.Name() + "." + c.Name, Fn: c.Fn})
		}
	}
	srv.SetHandler(httpx.Ops(app, d.Registry, checks))
	if d.Engines.PprofAddr != "" {
		go ServePprof(ctx, d.Engines.PprofAddr, d.Logger)
	}
	serveErr := srv.Serve(ctx)
	closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var errs []error
	if serveErr != nil {
		errs = append(errs, serveErr)
	}
	for _, s := range systems {
		if err := s.Close(closeCtx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.Name(), err))
		}
	}
	if err := d.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close engines: %w", err))
	}
	d.Logger.Info("shut down", "errors", len(errs))
	return errors.Join(errs...)
}

// BaseURL returns http://ADDR for a listen address, with 0.0.0.0/[::] shown
// as 127.0.0.1 so that links work from the same machine.
func BaseURL(addr string) string {
	host := addr
	if strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, ":") {
		host = "127.0.0.1" + host[strings.LastIndex(host, ":"):]
	}
	if strings.HasPrefix(host, "[::]:") {
		host = "127.0.0.1" + host[4:]
	}
	return "http://" + host
}

// ServeOne runs one system at the root of its own server: open engines,
// bind, build the system with its public URL, serve until ctx ends. ready,
// if not nil, is called with the public URL once the server is bound.
func ServeOne(ctx context.Context, e Engines, logger *slog.Logger, build func(context.Context, *Deps) (System, error), ready func(url string)) error {
	// Bind first: a bad or busy address must leave nothing behind.
	srv, err := Listen(e, logger)
	if err != nil {
		return err
	}
	d, err := Open(ctx, e, logger)
	if err != nil {
		srv.Close()
		return err
	}
	d.BaseURL = d.PublicURL(srv)
	sys, err := build(ctx, d)
	if err != nil {
		srv.Close()
		d.Close()
		return err
	}
	if ready != nil {
		ready(d.BaseURL)
	}
	app := d.Instrument(sys)
	if UI != nil {
		app = besideUI(UI(ctx, d.BaseURL, sys, d), app)
	}
	return Run(ctx, d, srv, []System{sys}, app)
}

// UI, when set, is the web console of one system that ServeOne serves at
// /ui/ beside the system (its base URL, the system, its engines). The
// console lives above the systems, so the command line sets this; the
// host only mounts it.
var UI func(ctx context.Context, base string, sys System, d *Deps) http.Handler

// NodeConsole is what a cluster node (`dynamo node`, `raftkv node`) shows
// at /ui/: its own view of its cluster, its request rates and metrics.
type NodeConsole struct {
	System      string
	Description string
	View        func() any // the node's own view, read once a second
	Metrics     *httpx.Metrics
	Gather      prometheus.Gatherer
	Admin       *auth.AdminToken
	DataDir     string
}

// NodeUI, when set, is the console of one cluster node, served at /ui/ of
// its client port (set by the command line, as UI is).
var NodeUI func(ctx context.Context, n NodeConsole) http.Handler

// WithNodeUI mounts the node's console at /ui/ beside app, when there is one.
func WithNodeUI(ctx context.Context, app http.Handler, n NodeConsole) http.Handler {
	if NodeUI == nil {
		return app
	}
	return besideUI(NodeUI(ctx, n), app)
}

// besideUI serves ui under /ui/ and app everywhere else. A prefix test
// rather than a ServeMux: every request of the system would otherwise pay
// a second route lookup (its own mux does the first) to learn it is not
// the console's.
func besideUI(ui, app http.Handler) http.Handler {
	ui = http.StripPrefix("/ui", ui)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/ui/"):
			ui.ServeHTTP(w, r)
		case r.URL.Path == "/ui":
			to := "/ui/"
			if r.URL.RawQuery != "" {
				to += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, to, http.StatusMovedPermanently)
		default:
			app.ServeHTTP(w, r)
		}
	})
}

// ServePprof serves the profiler on its own address until ctx ends.
func ServePprof(ctx context.Context, addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := httpx.NewServer(httpx.ServerConfig{Addr: addr, WriteTimeout: 5 * time.Minute}, mux, logger)
	if err := srv.Serve(ctx); err != nil {
		logger.Warn("pprof server", "err", err)
	}
}
