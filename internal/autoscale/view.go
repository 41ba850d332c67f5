package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Snapshot is the autoscaler as its console draws it: the policy, the
// copies now, and the rounds that sized the fleet (the last historyLen).
type Snapshot struct {
	Metric    string      `json:"metric"`
	Target    float64     `json:"target"`
	Tolerance float64     `json:"tolerance"`
	Min       int         `json:"min"`
	Max       int         `json:"max"`
	Window    string      `json:"window"`
	CoolDown  string      `json:"cooldown"`
	Interval  string      `json:"interval"`
	Command   string      `json:"command"`
	LBAdmin   string      `json:"lb_admin"`
	Copies    []CopyView  `json:"copies"`
	Rounds    []RoundView `json:"rounds"` // oldest first
}

// CopyView is one copy of the backend.
type CopyView struct {
	Addr    string    `json:"addr"`
	PID     int       `json:"pid"`
	State   string    `json:"state"` // starting, serving, draining
	Started time.Time `json:"started"`
}

// RoundView is one round, with a metric that could not be measured as null.
type RoundView struct {
	At       time.Time `json:"at"`
	Copies   int       `json:"copies"`
	Metric   *float64  `json:"metric"`
	Desired  int       `json:"desired"`
	Reason   string    `json:"reason"`
	Replaced int       `json:"replaced"`
}

const historyLen = 600

// watch keeps what the view and /metrics show.
type watch struct {
	cfg   Config
	fleet *fleet

	mu     sync.Mutex
	rounds []RoundView

	copies, desired, metric prometheus.Gauge
	replaced, ups, downs    prometheus.Counter
	registry                *prometheus.Registry
}

func newWatch(cfg Config, f *fleet) *watch {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w := &watch{cfg: cfg, fleet: f, registry: reg,
		copies:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalelab_autoscale_copies", Help: "Copies serving behind the balancer."}),
		desired:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalelab_autoscale_desired_copies", Help: "Copies the last round asked for."}),
		metric:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "scalelab_autoscale_metric", Help: "The scaling metric's mean per copy at the last round (NaN: not measured)."}),
		replaced: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_autoscale_replaced_total", Help: "Copies that exited by themselves and were replaced."}),
		ups:      prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_autoscale_scale_ups_total", Help: "Rounds that asked for more copies."}),
		downs:    prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_autoscale_scale_downs_total", Help: "Rounds that asked for fewer copies."}),
	}
	reg.MustRegister(w.copies, w.desired, w.metric, w.replaced, w.ups, w.downs)
	return w
}

func (w *watch) record(r Round) {
	var m *float64
	if !math.IsNaN(r.Metric) {
		v := r.Metric
		m = &v
	}
	w.mu.Lock()
	w.rounds = append(w.rounds, RoundView{At: r.At, Copies: r.Copies, Metric: m, Desired: r.Decision.Desired, Reason: r.Decision.Reason, Replaced: r.Replaced})
	if len(w.rounds) > historyLen {
		w.rounds = w.rounds[len(w.rounds)-historyLen:]
	}
	w.mu.Unlock()
	w.copies.Set(float64(r.Copies))
	w.desired.Set(float64(r.Decision.Desired))
	w.metric.Set(r.Metric)
	w.replaced.Add(float64(r.Replaced))
	switch {
	case r.Decision.Desired > r.Copies:
		w.ups.Inc()
	case r.Decision.Desired < r.Copies:
		w.downs.Inc()
	}
}

// Snapshot is the fleet and its history now.
func (w *watch) Snapshot() Snapshot {
	p := w.cfg.Policy
	s := Snapshot{Metric: w.cfg.Metric, Target: p.Target, Tolerance: p.Tolerance, Min: p.Min, Max: p.Max,
		Window: p.Window.String(), CoolDown: p.CoolDown.String(), Interval: w.cfg.Interval.String(),
		Command: strings.Join(w.cfg.Command, " "), LBAdmin: w.cfg.LBAdmin, Copies: []CopyView{}}
	f := w.fleet
	f.mu.Lock()
	seen := map[*replica]bool{}
	for _, group := range [][]*replica{f.copies, f.moving} {
		for _, c := range group {
			if seen[c] {
				continue
			}
			seen[c] = true
			v := CopyView{Addr: c.addr, State: c.state, Started: c.started}
			if c.cmd != nil && c.cmd.Process != nil {
				v.PID = c.cmd.Process.Pid
			}
			s.Copies = append(s.Copies, v)
		}
	}
	f.mu.Unlock()
	w.mu.Lock()
	s.Rounds = append([]RoundView(nil), w.rounds...)
	w.mu.Unlock()
	return s
}

// handler is the admin port: GET /api/v1/fleet, /healthz, /readyz (ready
// while a copy serves), /metrics, and the console at /ui/.
func (w *watch) handler(ctx context.Context, requests *httpx.Metrics) http.Handler {
	rt := httpx.NewRoutes()
	rt.HandleFunc("GET /api/v1/fleet", "the policy, the copies and the rounds that sized the fleet", func(rw http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(rw, http.StatusOK, w.Snapshot())
	})
	ready := httpx.Check{Name: "copies", Fn: func(context.Context) error {
		if w.fleet.count() == 0 {
			return errors.New("no copy is serving")
		}
		return nil
	}}
	ops := httpx.Ops(httpx.JSONErrors(rt.Mux), w.registry, []httpx.Check{ready})
	return host.WithNodeUI(ctx, httpx.Instrument("autoscale", requests, 1<<10, w.cfg.Logger, ops), host.NodeConsole{System: "autoscale",
		Description: "the autoscaler: copies of a backend behind the balancer, sized by the HPA rule",
		View:        func() any { return w.Snapshot() }, Metrics: requests, Gather: w.registry, DataDir: w.cfg.LogDir})
}

// serveAdmin serves the admin port until ctx ends.
func (w *watch) serveAdmin(ctx context.Context, addr string, logger *slog.Logger) (func() error, error) {
	requests := httpx.NewMetrics(w.registry)
	srv := httpx.NewServer(httpx.ServerConfig{Addr: addr}, w.handler(ctx, requests), logger)
	if err := srv.Listen(); err != nil {
		return nil, fmt.Errorf("autoscale: admin port: %w", err)
	}
	logger.Info("autoscale admin", "addr", srv.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	return func() error { return <-done }, nil
}
