package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Balancer is a pool, the proxy in front of it, and its admin surface.
type Balancer struct {
	Pool     *Pool
	Proxy    *Proxy
	Registry *prometheus.Registry
	Requests *httpx.Metrics // the proxied requests, for the console
	admin    *auth.AdminToken
}

// Snapshot is the balancer as its console draws it.
type Snapshot struct {
	Policy   string    `json:"policy"`
	Backends []Backend `json:"backends"`
}

// Snapshot is the pool's state now.
func (lb *Balancer) Snapshot() Snapshot {
	return Snapshot{Policy: lb.Pool.cfg.Policy, Backends: lb.Pool.List()}
}

// New builds a balancer over the given backends ("URL" or "URL,weight").
func New(pcfg PoolConfig, xcfg ProxyConfig, admin *auth.AdminToken, backends []string) (*Balancer, error) {
	pool, err := NewPool(pcfg)
	if err != nil {
		return nil, err
	}
	for _, s := range backends {
		u, w, err := ParseBackend(s)
		if err != nil {
			return nil, apperr.Usage(err)
		}
		if _, err := pool.add(u, w, true); err != nil {
			return nil, apperr.Usage(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg, pool)
	requests := httpx.NewMetrics(reg)
	px := NewProxy(pool, xcfg, m)
	px.recorder = requests.Recorder("lb", "proxied")
	return &Balancer{Pool: pool, Proxy: px, Registry: reg, Requests: requests, admin: admin}, nil
}

// AdminHandler is the admin port: the backends API (admin token), and
// /healthz, /readyz (ready while a backend may take traffic), /metrics.
func (lb *Balancer) AdminHandler() http.Handler {
	rt := httpx.NewRoutes()
	rt.HandleFunc("GET /admin/backends", "every backend: state, weight, in flight, latency, requests", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"backends": lb.Pool.List()})
	})
	rt.Handle("POST /admin/backends", `{"url","weight"}: add (admin token)`, lb.admin.RequireFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			URL    string `json:"url"`
			Weight int    `json:"weight"`
		}
		if err := httpx.DecodeJSON(r, &in); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		if in.Weight == 0 {
			in.Weight = 1
		}
		u, _, err := ParseBackend(in.URL)
		if err != nil {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "%s", err.Error()))
			return
		}
		id, err := lb.Pool.Add(u, in.Weight)
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusCreated, map[string]string{"id": id})
	}))
	rt.Handle("DELETE /admin/backends/{id}", "remove at once; its requests in flight finish (admin token)", lb.admin.RequireFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, r, lb.Pool.Remove(r.PathValue("id")))
	}))
	rt.Handle("POST /admin/backends/{id}/drain", "no new requests; {\"on\": false} undoes it (admin token)", lb.admin.RequireFunc(func(w http.ResponseWriter, r *http.Request) {
		in := struct {
			On *bool `json:"on"`
		}{}
		if r.ContentLength != 0 {
			if err := httpx.DecodeJSON(r, &in); err != nil {
				httpx.WriteError(w, r, err)
				return
			}
		}
		answer(w, r, lb.Pool.Drain(r.PathValue("id"), in.On == nil || *in.On))
	}))
	rt.Handle("PUT /admin/backends/{id}/weight", `{"weight"} (admin token)`, lb.admin.RequireFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Weight int `json:"weight"`
		}
		if err := httpx.DecodeJSON(r, &in); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		answer(w, r, lb.Pool.SetWeight(r.PathValue("id"), in.Weight))
	}))
	rt.Index("lb", "the load balancer's admin API", nil)
	ready := httpx.Check{Name: "backends", Fn: func(context.Context) error {
		if lb.Pool.Healthy() == 0 {
			return errors.New("no backend may take traffic")
		}
		return nil
	}}
	return httpx.Ops(httpx.JSONErrors(rt.Mux), lb.Registry, []httpx.Check{ready})
}

// adminWithUI is the admin port with the console at /ui/.
func (lb *Balancer) adminWithUI(ctx context.Context, dataDir string) http.Handler {
	return host.WithNodeUI(ctx, lb.AdminHandler(), host.NodeConsole{System: "lb", Description: "the load balancer: its backends, their states and traffic",
		View: func() any { return lb.Snapshot() }, Metrics: lb.Requests, Gather: lb.Registry, Admin: lb.admin, DataDir: dataDir})
}

func answer(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "done"})
}

func (lb *Balancer) serveTCP(ctx context.Context, cfg ServeConfig, logger *slog.Logger) error {
	admin := httpx.NewServer(httpx.ServerConfig{Addr: cfg.AdminAddr}, lb.adminWithUI(ctx, cfg.DataDir), logger)
	if err := admin.Listen(); err != nil {
		return err
	}
	checks, stopChecks := context.WithCancel(context.Background())
	defer stopChecks()
	go lb.Pool.RunChecks(checks)
	errs := make(chan error, 2)
	go func() { errs <- admin.Serve(ctx) }()
	go func() { errs <- lb.ServeTCP(ctx, cfg.Addr, cfg.DrainTimeout, logger) }()
	if err := errors.Join(<-errs, <-errs); err != nil {
		return fmt.Errorf("lb: %w", err)
	}
	return nil
}

// ServeConfig is where the balancer listens.
type ServeConfig struct {
	DataDir         string // where the console keeps what it keeps
	Mode            string // http (default) or tcp
	Addr, AdminAddr string
	MaxConns        int
	IdleTimeout     time.Duration
	DrainTimeout    time.Duration
}

// Serve runs the balancer until ctx ends, then drains: the listeners
// close, requests in flight get DrainTimeout to finish.
func (lb *Balancer) Serve(ctx context.Context, cfg ServeConfig, logger *slog.Logger) error {
	if cfg.Mode == "tcp" {
		return lb.serveTCP(ctx, cfg, logger)
	}
	front := httpx.NewServer(httpx.ServerConfig{Addr: cfg.Addr, ReadTimeout: time.Minute, WriteTimeout: time.Hour, IdleTimeout: cfg.IdleTimeout,
		DrainTimeout: cfg.DrainTimeout, MaxConns: cfg.MaxConns, MaxConnsPerClient: cfg.MaxConns}, lb.Proxy, logger)
	admin := httpx.NewServer(httpx.ServerConfig{Addr: cfg.AdminAddr}, lb.adminWithUI(ctx, cfg.DataDir), logger)
	if err := errors.Join(front.Listen(), admin.Listen()); err != nil {
		front.Close()
		admin.Close()
		return err
	}
	checks, stopChecks := context.WithCancel(context.Background())
	defer stopChecks()
	go lb.Pool.RunChecks(checks)
	logger.Info("lb up", "addr", front.Addr(), "admin", admin.Addr(), "policy", lb.Pool.cfg.Policy, "backends", len(lb.Pool.List()))
	errs := make(chan error, 2)
	go func() { errs <- front.Serve(ctx) }()
	go func() { errs <- admin.Serve(ctx) }()
	err := errors.Join(<-errs, <-errs)
	if err != nil {
		return fmt.Errorf("lb: %w", err)
	}
	return nil
}
