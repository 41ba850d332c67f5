package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/ratelimit"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// Topic is the broker topic every chat message goes through.
const Topic = "chat"

// ServerConfig tunes the WebSocket server.
type ServerConfig struct {
	Rooms          int           // rooms are 1..Rooms
	SendBuffer     int           // frames queued per connection before it is closed as too slow
	MaxPending     int           // messages per connection awaiting the broker's ack before reading pauses
	RateLimit      string        // per connection, COUNT/UNIT[:BURST] or off
	WriteTimeout   time.Duration // per frame
	PublishTimeout time.Duration // how long a message waits for the broker's ack
	PublishBatch   int           // chat messages per broker message (envelope) at most
	PublishBytes   int           // bytes per envelope at most (one message may exceed it alone)
	PublishFlight  int           // envelopes awaiting the broker's ack at once
	PingInterval   time.Duration // keep-alive pings find dead peers
	OriginPatterns []string      // cross-origin browsers allowed (host patterns); same-origin always is
}

// DefaultServerConfig is what `scalelab chat serve` starts with.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		Rooms:          20,
		SendBuffer:     1024,
		MaxPending:     256,
		RateLimit:      "100/s:200",
		WriteTimeout:   10 * time.Second,
		PublishTimeout: 10 * time.Second,
		PublishBatch:   256,
		PublishBytes:   64 << 10,
		PublishFlight:  1,
		PingInterval:   30 * time.Second,
	}
}

func (c ServerConfig) validate() error {
	if c.Rooms < 1 || c.Rooms > 100_000 {
		return fmt.Errorf("chat: rooms must be 1–100000, got %d", c.Rooms)
	}
	if c.SendBuffer < 1 || c.MaxPending < 1 {
		return errors.New("chat: send buffer and max pending must be ≥ 1")
	}
	if c.PublishBatch < 1 || c.PublishBytes < 1 || c.PublishFlight < 1 {
		return errors.New("chat: publish batch, bytes and in-flight envelopes must be ≥ 1")
	}
	if c.WriteTimeout <= 0 || c.PublishTimeout <= 0 || c.PingInterval <= 0 {
		return errors.New("chat: timeouts and the ping interval must be > 0")
	}
	return nil
}

// idSource issues message IDs (a Snowflake generator with a leased worker).
type idSource interface {
	Next() (snowflake.ID, error)
	Epoch() time.Time
}

// Server accepts WebSocket connections, publishes what clients send, and
// fans what the broker delivers out to its own connections.
type Server struct {
	cfg     ServerConfig
	limit   ratelimit.Limit
	broker  broker.Broker
	ids     idSource
	hub     *hub
	pub     *publisher
	metrics *serverMetrics
	logger  *slog.Logger

	sub     broker.Consumer
	closing atomic.Bool
	conns   sync.WaitGroup
}

// NewServer subscribes to the chat topic and returns a server ready for
// connections.
func NewServer(ctx context.Context, cfg ServerConfig, b broker.Broker, ids idSource, reg prometheus.Registerer, logger *slog.Logger) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	limit, err := ratelimit.ParseLimit(cfg.RateLimit)
	if err != nil {
		return nil, fmt.Errorf("chat: --rate-limit: %w", err)
	}
	s := &Server{cfg: cfg, limit: limit, broker: b, ids: ids, logger: logger}
	s.metrics = newServerMetrics(reg)
	s.hub = newHub(cfg.Rooms, s.metrics)
	s.sub, err = b.Subscribe(ctx, Topic, s.deliver)
	if err != nil {
		return nil, fmt.Errorf("chat: subscribe: %w", err)
	}
	s.pub = newPublisher(b, cfg.PublishBatch, cfg.PublishBytes, cfg.PublishFlight, cfg.PublishTimeout,
		func(n int) { s.metrics.envelopeSize.Observe(float64(n)) })
	return s, nil
}

// deliver is the subscription's handler: one goroutine, in topic order, so
// every connection's queue receives the room's messages in the same order.
func (s *Server) deliver(envelope []byte) {
	for rest := envelope; len(rest) > 0; {
		room, body, next, err := NextWire(rest)
		if err != nil {
			s.logger.Warn("chat: dropping the rest of a malformed broker message", "err", err)
			return
		}
		s.hub.broadcast(room, body)
		rest = next
	}
}

// ServeWS is GET /chat/{roomId}.
func (s *Server) ServeWS(w http.ResponseWriter, r *http.Request) {
	room, err := ParseRoom(r.PathValue("roomId"), s.cfg.Rooms)
	if err != nil {
		httpx.WriteJSON(w, http.StatusNotFound, httpx.ErrorBody{Error: err.Error()})
		return
	}
	if s.closing.Load() {
		w.Header().Set("Retry-After", "1")
		httpx.WriteJSON(w, http.StatusServiceUnavailable, httpx.ErrorBody{Error: "server is shutting down: connect to another instance"})
		return
	}
	// The HTTP server's read and write deadlines are for requests; a
	// WebSocket lives on, with its own timeouts per frame.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	cw := &corkingWriter{ResponseWriter: w, writeTimeout: s.cfg.WriteTimeout}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.OriginPatterns})
	if err != nil {
		if cw.refused != 0 { // 400, 403, 426 …: the reason, as JSON
			h := w.Header()
			h.Del("Content-Type")
			if cw.refused == http.StatusUpgradeRequired {
				h.Set("Upgrade", "websocket")
			}
			httpx.WriteJSON(w, cw.refused, httpx.ErrorBody{Error: strings.TrimSpace(string(cw.reason))})
		}
		return
	}
	ws.SetReadLimit(MaxFrame)
	s.conns.Add(1)
	defer s.conns.Done()
	c := newConn(s, ws, cw.conn, room)
	s.hub.join(c)
	defer s.hub.leave(c)
	c.run()
}

// Close stops the subscription and closes every connection with 1001
// "going away" so that clients reconnect to another instance, then waits
// for the connections' goroutines (up to ctx).
func (s *Server) Close(ctx context.Context) error {
	if !s.closing.CompareAndSwap(false, true) {
		return nil
	}
	s.sub.Stop()
	s.hub.closeAll(websocket.StatusGoingAway, "server shutting down: reconnect to another instance")
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.pub.close()
		return nil
	case <-ctx.Done():
		s.pub.close()
		return fmt.Errorf("chat: connections still open at shutdown: %w", ctx.Err())
	}
}

// Connections is the number of open WebSocket connections.
func (s *Server) Connections() int { return s.hub.count() }

func (s *Server) newLimiter() *rate.Limiter {
	if s.limit.IsZero() {
		return nil
	}
	return rate.NewLimiter(rate.Limit(float64(s.limit.Count)/s.limit.Period.Seconds()), s.limit.Burst)
}

type serverMetrics struct {
	connections  prometheus.Gauge
	received     *prometheus.CounterVec
	accepted     prometheus.Counter
	invalid      prometheus.Counter
	rateLimited  prometheus.Counter
	brokerErrors prometheus.Counter
	deliveries   prometheus.Counter
	slowClosed   prometheus.Counter
	publishAck   prometheus.Histogram
	envelopeSize prometheus.Histogram
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scalelab_chat_connections", Help: "Open WebSocket connections."}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_chat_messages_received_total",
			Help: "Client messages by outcome: accepted (acked OK), invalid, rate_limited, broker_error."}, []string{"outcome"}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_deliveries_total", Help: "Room messages queued to connections of this server."}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_slow_consumer_closes_total", Help: "Connections closed because their send buffer was full."}),
		publishAck: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "scalelab_chat_publish_ack_seconds", Help: "From reading a client's message to the broker's ack.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
	}
	m.envelopeSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "scalelab_chat_publish_envelope_messages", Help: "Chat messages per broker message (envelope) published.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10)})
	m.accepted = m.received.WithLabelValues("accepted")
	m.invalid = m.received.WithLabelValues("invalid")
	m.rateLimited = m.received.WithLabelValues("rate_limited")
	m.brokerErrors = m.received.WithLabelValues("broker_error")
	reg.MustRegister(m.connections, m.received, m.deliveries, m.slowClosed, m.publishAck, m.envelopeSize)
	return m
}
