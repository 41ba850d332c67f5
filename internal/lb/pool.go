package lb

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalelab/scalelab/internal/lb/balance"
	"github.com/scalelab/scalelab/internal/lb/health"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// PoolConfig shapes a pool of backends.
type PoolConfig struct {
	Policy    string // balance.Names
	Seed      uint64
	SlowStart balance.SlowStart
	Outliers  health.OutlierConfig
	// Active checks: GET HealthPath on each backend every HealthInterval;
	// down after Fall failures in a row, up after Rise successes. An empty
	// path turns active checks off (passive detection still runs).
	HealthPath     string
	TCPChecks      bool // probe by connecting, not by GET (the TCP mode)
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	Rise, Fall     int
	// MaxIdlePerBackend is the keep-alive pool to each backend.
	MaxIdlePerBackend int
	DialTimeout       time.Duration
	Now               func() time.Time // nil: time.Now
}

// DefaultPoolConfig checks /healthz every second, rise 2, fall 2.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{Policy: "round-robin", Seed: 1, SlowStart: balance.DefaultSlowStart, Outliers: health.DefaultOutliers,
		HealthPath: "/healthz", HealthInterval: time.Second, HealthTimeout: 500 * time.Millisecond, Rise: 2, Fall: 2,
		MaxIdlePerBackend: 256, DialTimeout: 2 * time.Second}
}

// Backend is one backend as the admin API shows it.
type Backend struct {
	ID         string  `json:"id"`
	URL        string  `json:"url"`
	Weight     int     `json:"weight"`
	State      string  `json:"state"` // up, down (checks), ejected (outliers), draining
	InFlight   int64   `json:"in_flight"`
	Requests   uint64  `json:"requests"`
	Failures   uint64  `json:"failures"`   // gateway failures: refused, reset, timed out, 5xx
	LatencyMS  float64 `json:"ewma_ms"`    // peak-EWMA latency estimate
	SlowStart  float64 `json:"slow_start"` // the share of its weight it gets now (1: full)
	EjectedTil string  `json:"ejected_until,omitempty"`
}

type backend struct {
	id        string
	url       *url.URL
	weight    atomic.Int64
	inFlight  atomic.Int64
	requests  atomic.Uint64
	failures  atomic.Uint64
	draining  atomic.Bool
	ewma      balance.PeakEWMA
	checker   *health.Checker  // guarded by Pool.mu
	transport *http.Transport  // upgrades, https backends and health checks
	direct    *directTransport // plain HTTP/1.1 requests to an http:// backend
}

// Pool is the backends of one balancer and the decisions about them.
type Pool struct {
	cfg    PoolConfig
	policy balance.Policy
	now    func() time.Time

	mu       sync.Mutex
	backends []*backend // in the order they were added
	outliers *health.Outliers
}

// NewPool makes an empty pool.
func NewPool(cfg PoolConfig) (*Pool, error) {
	p, err := balance.New(cfg.Policy, cfg.Seed)
	if err != nil {
		return nil, apperr.Usage(err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Pool{cfg: cfg, policy: p, now: now, outliers: health.NewOutliers(cfg.Outliers)}, nil
}

// ParseBackend reads "URL" or "URL,weight".
func ParseBackend(s string) (*url.URL, int, error) {
	raw, weight := s, 1
	if i := strings.LastIndex(s, ","); i > 0 {
		raw = s[:i]
		if _, err := fmt.Sscanf(s[i+1:], "%d", &weight); err != nil || weight < 1 || weight > 1000 {
			return nil, 0, fmt.Errorf("backend %q: the weight after the comma is a number from 1 to 1000", s)
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, 0, fmt.Errorf("backend %q: want http://host:port (no path or query)", s)
	}
	u.Path = ""
	return u, weight, nil
}

// Add adds a backend at runtime: up (it proves otherwise through its
// checks and traffic) and in slow start. Adding a URL already there is a
// conflict.
func (p *Pool) Add(u *url.URL, weight int) (string, error) { return p.add(u, weight, false) }

// add adds a backend; a warm one (configured at start) skips slow start.
func (p *Pool) add(u *url.URL, weight int, warm bool) (string, error) {
	if weight < 1 || weight > 1000 {
		return "", apperr.E(apperr.Invalid, "weight: 1 to 1000")
	}
	id := u.Host
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.backends {
		if b.id == id {
			return "", apperr.E(apperr.Conflict, "backend %s is in the pool already", id)
		}
	}
	since := p.now()
	if warm {
		since = time.Time{}
	}
	b := &backend{id: id, url: u, checker: health.NewChecker(p.cfg.Rise, p.cfg.Fall, true, since)}
	b.weight.Store(int64(weight))
	b.transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        p.cfg.MaxIdlePerBackend,
		MaxIdleConnsPerHost: p.cfg.MaxIdlePerBackend,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	if u.Scheme == "http" {
		b.direct = newDirectTransport(u.Host, p.cfg.DialTimeout, p.cfg.MaxIdlePerBackend)
	}
	b.ewma.Tau = balance.DefaultTau
	p.backends = append(p.backends, b)
	return id, nil
}

func (p *Pool) find(id string) (*backend, int) {
	for i, b := range p.backends {
		if b.id == id {
			return b, i
		}
	}
	return nil, -1
}

// Remove takes a backend out at once; requests in flight on it finish.
func (p *Pool) Remove(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, i := p.find(id)
	if b == nil {
		return apperr.E(apperr.NotFound, "no backend %s", id)
	}
	p.backends = append(p.backends[:i:i], p.backends[i+1:]...)
	p.outliers.Forget(id)
	go func() { // close its idle connections once its requests are done
		for b.inFlight.Load() > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		b.transport.CloseIdleConnections()
		if b.direct != nil {
			b.direct.CloseIdleConnections()
		}
	}()
	return nil
}

// Drain stops sending new requests to a backend; it stays listed, its
// requests in flight finish, and Remove (or Undrain) follows.
func (p *Pool) Drain(id string, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := p.find(id)
	if b == nil {
		return apperr.E(apperr.NotFound, "no backend %s", id)
	}
	b.draining.Store(on)
	return nil
}

// SetWeight changes a backend's weight; requests in flight are untouched.
func (p *Pool) SetWeight(id string, weight int) error {
	if weight < 1 || weight > 1000 {
		return apperr.E(apperr.Invalid, "weight: 1 to 1000")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := p.find(id)
	if b == nil {
		return apperr.E(apperr.NotFound, "no backend %s", id)
	}
	b.weight.Store(int64(weight))
	return nil
}

// state says whether b may take traffic at now, and its slow-start share
// (p.mu held).
func (p *Pool) state(b *backend, now time.Time) (string, float64) {
	up, since := b.checker.Up()
	if !up {
		return "down", 0
	}
	if ejected, _ := p.outliers.Ejected(b.id, now); ejected {
		return "ejected", 0
	}
	if b.draining.Load() {
		return "draining", 0
	}
	if back := p.outliers.Back(b.id, now); back.After(since) {
		since = back
	}
	return "up", p.cfg.SlowStart.Factor(now.Sub(since))
}

// errNoBackend is the answer when nothing can take a request.
var errNoBackend = apperr.E(apperr.Unavailable, "no healthy backend")

// pick chooses a backend for a request, skipping those in exclude.
func (p *Pool) pick(key string, exclude map[*backend]bool) (*backend, error) {
	now := p.now()
	p.mu.Lock()
	cands := make([]balance.Backend, 0, len(p.backends))
	refs := make([]*backend, 0, len(p.backends))
	sum, known := 0.0, 0
	for _, b := range p.backends {
		if c, ok := b.ewma.Cost(now); ok {
			sum, known = sum+c, known+1
		}
	}
	for _, b := range p.backends {
		st, share := p.state(b, now)
		if st != "up" || exclude[b] {
			continue
		}
		cost, ok := b.ewma.Cost(now)
		if !ok { // no response yet: the others' mean, so it is neither shunned nor flooded
			cost = 0.001
			if known > 0 {
				cost = sum / float64(known)
			}
		}
		cands = append(cands, balance.Backend{ID: b.id, Weight: float64(b.weight.Load()) * share, InFlight: int(b.inFlight.Load()), Cost: cost})
		refs = append(refs, b)
	}
	p.mu.Unlock()
	chosen := p.policy.Pick(cands, balance.Request{Key: key})
	if chosen == nil {
		return nil, errNoBackend
	}
	for i := range cands {
		if &cands[i] == chosen {
			return refs[i], nil
		}
	}
	return nil, errNoBackend
}

// observe records a response (or a failure to get one) from b.
func (p *Pool) observe(b *backend, ok bool, rtt time.Duration) {
	now := p.now()
	if !ok {
		b.failures.Add(1)
	}
	b.ewma.Observe(rtt, now)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outliers.Observe(b.id, ok, now, len(p.backends))
}

// List is every backend and its state.
func (p *Pool) List() []Backend {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Backend, 0, len(p.backends))
	for _, b := range p.backends {
		st, share := p.state(b, now)
		cost, _ := b.ewma.Cost(now)
		v := Backend{ID: b.id, URL: b.url.String(), Weight: int(b.weight.Load()), State: st, InFlight: b.inFlight.Load(),
			Requests: b.requests.Load(), Failures: b.failures.Load(), LatencyMS: cost * 1000, SlowStart: share}
		if _, until := p.outliers.Ejected(b.id, now); !until.IsZero() {
			v.EjectedTil = until.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, v)
	}
	return out
}

// Healthy counts the backends that may take traffic.
func (p *Pool) Healthy() int {
	n := 0
	for _, b := range p.List() {
		if b.State == "up" {
			n++
		}
	}
	return n
}

// RunChecks probes every backend until ctx ends.
func (p *Pool) RunChecks(ctx context.Context) {
	if (p.cfg.HealthPath == "" && !p.cfg.TCPChecks) || p.cfg.HealthInterval <= 0 {
		return
	}
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		bs := append([]*backend(nil), p.backends...)
		p.mu.Unlock()
		var wg sync.WaitGroup
		for _, b := range bs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok := p.probe(ctx, b)
				p.mu.Lock()
				b.checker.Observe(ok, p.now())
				p.mu.Unlock()
			}()
		}
		wg.Wait()
	}
}

func (p *Pool) probe(ctx context.Context, b *backend) bool {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.HealthTimeout)
	defer cancel()
	if p.cfg.TCPChecks {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.url.Host)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url.String()+p.cfg.HealthPath, nil)
	if err != nil {
		return false
	}
	resp, err := b.transport.RoundTrip(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}
