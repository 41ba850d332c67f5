package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/lb/balance"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// ProxyConfig shapes the HTTP proxy in front of a pool.
type ProxyConfig struct {
	MaxBody int64 // request bodies above this are refused with 413
	// Timeout bounds a backend's answer (headers); WebSocket upgrades and
	// streamed bodies are not cut by it.
	Timeout    time.Duration
	MaxRetries int                  // per request, each to another backend
	Budget     *balance.RetryBudget // nil: DefaultRetryBudget
	// HashHeader, when set, is the request header whose value the hashing
	// policies hash (a session cookie's carrier); otherwise the client's
	// address is.
	HashHeader string
}

// DefaultProxyConfig: 10 MiB bodies, 30 s answers, two retries.
func DefaultProxyConfig() ProxyConfig {
	return ProxyConfig{MaxBody: 10 << 20, Timeout: 30 * time.Second, MaxRetries: 2}
}

// Proxy is the balancer's request path.
type Proxy struct {
	pool     *Pool
	cfg      ProxyConfig
	rp       *httputil.ReverseProxy
	metrics  *metrics
	recorder *httpx.Recorder // the requests the console charts; nil: none
}

type ctxKey struct{}

// attempt is what the handler tells the transport about a request.
type attempt struct {
	key string
}

// NewProxy proxies to pool.
func NewProxy(pool *Pool, cfg ProxyConfig, m *metrics) *Proxy {
	if cfg.Budget == nil {
		cfg.Budget = balance.DefaultRetryBudget()
	}
	px := &Proxy{pool: pool, cfg: cfg, metrics: m}
	px.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded() // X-Forwarded-For, -Host, -Proto
			pr.Out.Header.Set("Forwarded", forwarded(pr.In))
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "backend.pending" // the transport picks the backend
		},
		Transport:  px,
		BufferPool: bufferPool{}, // a profile showed a fresh 32 KiB copy buffer per answer as the largest allocation
		// FlushInterval 0: an answer of known length goes out in one write;
		// one of unknown length (a stream: SSE, long polls, chunked) is
		// flushed as the backend writes, by ReverseProxy itself.
		FlushInterval: 0,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var ae *apperr.Error
			if !errors.As(err, &ae) {
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					err = apperr.E(apperr.Timeout, "the backend did not answer within %v", cfg.Timeout)
				case r.Context().Err() != nil:
					return // the client left
				default:
					err = &apperr.Error{Code: apperr.BadGateway, Message: "the backend failed: " + err.Error()}
				}
			}
			httpx.WriteError(w, r, err)
		},
	}
	return px
}

// forwarded is RFC 7239's Forwarded header for one hop.
func forwarded(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if strings.Contains(host, ":") {
		host = `"[` + host + `]"`
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	return "for=" + host + ";host=" + strings.ReplaceAll(r.Host, `"`, "") + ";proto=" + proto
}

// ServeHTTP proxies one request.
func (px *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > px.cfg.MaxBody {
		httpx.WriteError(w, r, apperr.E(apperr.TooLarge, "the body is over %d bytes", px.cfg.MaxBody))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, px.cfg.MaxBody)
	if isUpgrade(r) {
		// A WebSocket lives as long as its ends want: lift the server's
		// read and write deadlines for this connection.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
	}
	key := r.Header.Get(px.cfg.HashHeader)
	if px.cfg.HashHeader == "" || key == "" {
		key, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	ctx := context.WithValue(r.Context(), ctxKey{}, &attempt{key: key})
	if px.recorder == nil {
		px.rp.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	start := time.Now()
	sw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	px.rp.ServeHTTP(sw, r.WithContext(ctx))
	px.recorder.Record(sw.status, time.Since(start))
}

// statusRecorder remembers the status written; Unwrap lets
// ResponseController reach the connection (flush, hijack for upgrades).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// retryable: the method is idempotent and the body, if any, can be sent again.
func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return r.Body == nil || r.Body == http.NoBody || r.GetBody != nil || r.ContentLength == 0
}

// RoundTrip sends the request to a backend the policy picks, and, for an
// idempotent request whose backend failed before answering (refused,
// reset, or a 502/503), to another, within the retry budget.
func (px *Proxy) RoundTrip(r *http.Request) (*http.Response, error) {
	a, _ := r.Context().Value(ctxKey{}).(*attempt)
	if a == nil {
		a = &attempt{}
	}
	now := px.pool.now()
	px.cfg.Budget.Request(now)
	tried := map[*backend]bool{}
	var lastErr error
	for try := 0; ; try++ {
		b, err := px.pool.pick(a.key, tried)
		if err != nil {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, err
		}
		tried[b] = true
		resp, err := px.send(b, r)
		failed := err != nil || resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable
		if !failed {
			return resp, nil
		}
		if try >= px.cfg.MaxRetries || !retryable(r) || r.Context().Err() != nil || !px.cfg.Budget.Retry(px.pool.now()) {
			if err != nil {
				return nil, err
			}
			return resp, nil
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			lastErr = nil
		} else {
			lastErr = err
		}
		if r.GetBody != nil && r.Body != nil && r.Body != http.NoBody {
			body, gerr := r.GetBody()
			if gerr != nil {
				return nil, gerr
			}
			r.Body = body
		}
		px.metrics.retries.Inc()
	}
}

// send is one attempt on one backend. The request counts as in flight on
// it until its response body is closed (a streamed answer or a WebSocket
// holds its backend as long as it lasts); the timeout bounds the wait for
// the answer's headers only.
func (px *Proxy) send(b *backend, r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(r.Context())
	// r is ReverseProxy's outgoing copy, ours to send: a shallow copy per
	// attempt with its own URL is enough (a deep Clone costs an allocation
	// per header on every request).
	out := r.WithContext(ctx)
	u := *r.URL
	u.Scheme, u.Host = b.url.Scheme, b.url.Host
	out.URL = &u
	var timer *time.Timer
	if px.cfg.Timeout > 0 && !isUpgrade(r) {
		timer = time.AfterFunc(px.cfg.Timeout, cancel)
	}
	start := time.Now()
	b.inFlight.Add(1)
	b.requests.Add(1)
	var rt http.RoundTripper = b.transport
	if b.direct != nil && !isUpgrade(r) {
		rt = b.direct
	}
	resp, err := rt.RoundTrip(out)
	if timer != nil {
		timer.Stop()
	}
	if err != nil {
		b.inFlight.Add(-1)
		cancel()
		if r.Context().Err() != nil {
			// The client went away: no verdict on the backend (counting it
			// would eject healthy backends whenever clients disconnect).
			return nil, err
		}
		px.pool.observe(b, false, time.Since(start))
		px.metrics.observe(b.id, 0)
		if ctx.Err() != nil {
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	px.pool.observe(b, resp.StatusCode < 500, time.Since(start))
	px.metrics.observe(b.id, resp.StatusCode)
	done := func() { b.inFlight.Add(-1); cancel() }
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok { // a switched protocol: keep it writable
		resp.Body = &countedConn{ReadWriteCloser: rwc, done: done}
	} else {
		resp.Body = &countedBody{ReadCloser: resp.Body, done: done}
	}
	return resp, nil
}

// bufferPool recycles ReverseProxy's copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

type countedBody struct {
	io.ReadCloser
	done func()
	once bool
}

func (c *countedBody) Close() error {
	err := c.ReadCloser.Close()
	if !c.once {
		c.once = true
		c.done()
	}
	return err
}

type countedConn struct {
	io.ReadWriteCloser
	done func()
	once bool
}

func (c *countedConn) Close() error {
	err := c.ReadWriteCloser.Close()
	if !c.once {
		c.once = true
		c.done()
	}
	return err
}
