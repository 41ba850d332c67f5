package httpx

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxBody is the request body limit when none is configured.
const DefaultMaxBody = 1 << 20

// Metrics holds the request metrics of one process. Create one per
// Prometheus registry and share it between the systems of that process.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	totals   sync.Map // system name -> *atomic.Uint64, for the dashboard
}

// routeMetrics are one route's metric children, resolved once: hashing
// three label values per request costs more than the counter itself.
type routeMetrics struct {
	duration prometheus.Observer
	byStatus [600]atomic.Pointer[prometheus.Counter]
}

// routeCache maps a route pattern to its metrics for one system.
type routeCache struct {
	mu     sync.RWMutex
	routes map[string]*routeMetrics
}

func (m *Metrics) route(c *routeCache, system, route string) *routeMetrics {
	c.mu.RLock()
	rm := c.routes[route]
	c.mu.RUnlock()
	if rm != nil {
		return rm
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if rm = c.routes[route]; rm == nil {
		rm = &routeMetrics{duration: m.duration.WithLabelValues(system, route)}
		c.routes[route] = rm
	}
	return rm
}

func (m *Metrics) observe(c *routeCache, system, route string, status int, elapsed time.Duration) {
	rm := m.route(c, system, route)
	rm.duration.Observe(elapsed.Seconds())
	if status < 0 || status >= len(rm.byStatus) {
		m.requests.WithLabelValues(system, route, strconv.Itoa(status)).Inc()
		return
	}
	ctr := rm.byStatus[status].Load()
	if ctr == nil {
		c := m.requests.WithLabelValues(system, route, strconv.Itoa(status))
		rm.byStatus[status].Store(&c)
		ctr = &c
	}
	(*ctr).Inc()
}

// NewMetrics registers the request metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_http_requests_total",
			Help: "HTTP requests served, by system, route pattern and status code.",
		}, []string{"system", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scalelab_http_request_duration_seconds",
			Help:    "HTTP request latency, by system and route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"system", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Requests returns how many requests the system has served so far.
func (m *Metrics) Requests(system string) uint64 {
	if v, ok := m.totals.Load(system); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

func (m *Metrics) total(system string) *atomic.Uint64 {
	v, _ := m.totals.LoadOrStore(system, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

// statusWriter remembers the status a handler wrote, and turns the plain
// text 404 and 405 that http.ServeMux writes for unmatched requests into
// JSON errors like every other error of ours. It knows the mux wrote them
// because the mux leaves r.Pattern empty when nothing matched.
type statusWriter struct {
	http.ResponseWriter
	req     *http.Request
	status  int
	written bool
	muted   bool // the mux's plain-text body is being replaced
}

func (w *statusWriter) WriteHeader(code int) {
	if w.written {
		return
	}
	w.status, w.written = code, true
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && w.req.Pattern == "" {
		w.muted = true
		msg := "no such route: " + w.req.Method + " " + w.req.URL.Path
		if code == http.StatusMethodNotAllowed {
			msg = "method " + w.req.Method + " is not allowed on " + w.req.URL.Path
		}
		h := w.ResponseWriter.Header()
		h.Del("X-Content-Type-Options")
		WriteJSON(w.ResponseWriter, code, ErrorBody{Error: msg})
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	if w.muted {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// JSONErrors makes the unmatched-route errors of the mux next JSON. Instrument
// already does this; use JSONErrors for muxes that are not instrumented.
func JSONErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&statusWriter{ResponseWriter: w, req: r, status: http.StatusOK}, r)
	})
}

// Unwrap lets http.ResponseController reach the real writer (flush, deadlines,
// hijack for WebSockets).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Instrument wraps a system's router: panic recovery, body limit, metrics and
// debug logging. It must wrap the *http.ServeMux itself (not a StripPrefix
// around it), because the route label is read from r.Pattern, which the mux
// sets on the request it was given.
func Instrument(system string, m *Metrics, maxBody int64, logger *slog.Logger, next http.Handler) http.Handler {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	total := m.total(system)
	routes := &routeCache{routes: map[string]*routeMetrics{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, req: r, status: http.StatusOK}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(sw, r.Body, maxBody)
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				logger.Error("panic serving request", "system", system, "method", r.Method,
					"path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !sw.written {
					WriteError(sw, r, fmt.Errorf("panic: %v", p))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			total.Add(1)
			m.observe(routes, system, route, sw.status, elapsed)
			if logger.Enabled(context.Background(), slog.LevelDebug) {
				logger.Debug("request", "system", system, "method", r.Method, "path", r.URL.Path,
					"status", sw.status, "duration", elapsed)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// Recorder counts one system's requests for a handler that Instrument
// cannot wrap: a proxy, whose answers are its backends' and must pass
// through unchanged (Instrument turns unmatched 404s into JSON).
type Recorder struct {
	m             *Metrics
	routes        *routeCache
	total         *atomic.Uint64
	system, route string
}

// Recorder returns the recorder of system's requests under route.
func (m *Metrics) Recorder(system, route string) *Recorder {
	return &Recorder{m: m, routes: &routeCache{routes: map[string]*routeMetrics{}}, total: m.total(system), system: system, route: route}
}

// Record counts one answered request.
func (r *Recorder) Record(status int, elapsed time.Duration) {
	r.total.Add(1)
	r.m.observe(r.routes, r.system, r.route, status, elapsed)
}
