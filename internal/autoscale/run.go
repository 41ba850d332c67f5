package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/scalelab/scalelab/internal/platform/promscrape"
)

// Config is one autoscaler.
type Config struct {
	Policy   Policy
	Metric   string        // Metrics
	Interval time.Duration // how often it measures and decides
	Command  []string      // the backend, with {port} in its arguments
	LBAdmin  string        // the balancer's admin URL
	LBToken  string        // its admin token
	Ready    time.Duration // how long a new copy has to answer /readyz
	Drain    time.Duration // how long a stopping copy's requests get
	LogDir   string        // copies' output (empty: discarded)
	// AdminAddr, when set, serves the fleet's view (GET /api/v1/fleet),
	// /healthz, /readyz, /metrics and the console at /ui/.
	AdminAddr string
	Logger    *slog.Logger
	// OnRound, when set, is told every round's outcome (tests, the lab).
	OnRound func(Round)
}

// Round is one measure-and-decide step.
type Round struct {
	At       time.Time
	Copies   int
	Metric   float64 // the mean per copy; NaN when none could be measured
	Decision Decision
	Replaced int // copies that had exited and were replaced
}

// Run keeps the fleet at the size the decider asks for until ctx ends,
// then stops every copy (draining each).
func Run(ctx context.Context, cfg Config) error {
	if err := CheckMetric(cfg.Metric); err != nil {
		return err
	}
	if len(cfg.Command) == 0 {
		return errors.New("autoscale: no backend command")
	}
	dec, err := NewDecider(cfg.Policy)
	if err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	lb := &balancer{admin: cfg.LBAdmin, token: cfg.LBToken, client: &http.Client{Timeout: 5 * time.Second}}
	f := &fleet{command: cfg.Command, lb: lb, logDir: cfg.LogDir, logger: cfg.Logger, ready: cfg.Ready, drain: cfg.Drain}
	w := newWatch(cfg, f)
	if cfg.AdminAddr != "" {
		actx, stopAdmin := context.WithCancel(ctx)
		wait, err := w.serveAdmin(actx, cfg.AdminAddr, cfg.Logger)
		if err != nil {
			stopAdmin()
			return err
		}
		defer func() { stopAdmin(); _ = wait() }() // after the copies have stopped
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Drain+20*time.Second)
		defer cancel()
		for _, c := range f.list() {
			f.stop(stopCtx, c)
		}
	}()
	for i := 0; i < cfg.Policy.Min; i++ {
		if _, err := f.start(ctx); err != nil {
			return err
		}
	}
	scrape := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		replaced := f.reap(ctx)
		metric := measure(ctx, cfg.Metric, f, lb, scrape, now)
		d := dec.Decide(now, f.count(), metric)
		round := Round{At: now, Copies: f.count(), Metric: metric, Decision: d, Replaced: replaced}
		for f.count() < d.Desired && ctx.Err() == nil {
			if _, err := f.start(ctx); err != nil {
				cfg.Logger.Warn("autoscale: a copy did not start", "err", err)
				break
			}
		}
		if extra := f.count() - d.Desired; extra > 0 {
			cs := f.list()
			for _, c := range cs[len(cs)-extra:] { // the newest go first
				f.stop(ctx, c)
			}
		}
		cfg.Logger.Info("autoscale", "copies", round.Copies, "metric", cfg.Metric, "value", fmt.Sprintf("%.3g", metric), "desired", d.Desired, "why", d.Reason)
		w.record(round)
		if cfg.OnRound != nil {
			cfg.OnRound(round)
		}
	}
}

// measure is the metric's mean over the copies that could be measured.
func measure(ctx context.Context, metric string, f *fleet, lb *balancer, client *http.Client, now time.Time) float64 {
	if metric == MetricInFlight {
		inFlight, err := lb.inFlight(ctx)
		if err != nil {
			return math.NaN()
		}
		sum, n := 0.0, 0
		for _, c := range f.list() {
			sum, n = sum+inFlight[c.addr], n+1
		}
		if n == 0 {
			return math.NaN()
		}
		return sum / float64(n)
	}
	sum, n := 0.0, 0
	for _, c := range f.list() {
		m, err := promscrape.Scrape(ctx, client, "http://"+c.addr+"/metrics")
		if err != nil {
			continue
		}
		s := SampleOf(m, now)
		if c.prev != nil {
			if v, ok := Between(metric, *c.prev, s); ok {
				sum, n = sum+v, n+1
			} else if metric == MetricP99 {
				n++ // no request in the interval: a p99 of zero, for the mean
			}
		}
		c.prev = &s
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}
