package shortener

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/resilience"
)

// The click pipeline: redirect → bounded channel → publisher, which counts
// events per (code, day, referrer, agent) for publishEvery (or until
// maxBatchKeys distinct keys) → one broker message on topic "clicks" →
// consumer group "click-aggregator" (every instance is a member) → one SQL
// transaction per flush that records the batch ids and adds the counts.
//
// Counting at the publisher is what keeps the pipeline cheap under load:
// at 50,000 redirects/s over a few thousand hot links, a 500 ms window
// carries 25,000 events but only as many keys as there are hot links, so
// the broker, the JSON and the SQL upserts scale with distinct links, not
// with clicks.
const (
	clicksTopic  = "clicks"
	clicksGroup  = "click-aggregator"
	maxBatchKeys = 5000
	publishEvery = 500 * time.Millisecond
	flushEvery   = time.Second
	flushKeys    = 20000
)

// ClickEvent is one redirect, as counted.
type ClickEvent struct {
	Code     string `json:"c"`
	At       int64  `json:"t"` // unix ms
	Referrer string `json:"r"`
	Agent    string `json:"a"`
}

// ClickKey is what clicks are counted by.
type ClickKey struct {
	Code     string `json:"c"`
	Day      string `json:"d"` // UTC, YYYY-MM-DD
	Referrer string `json:"r"`
	Agent    string `json:"a"`
}

// ClickCount is a number of clicks with one key.
type ClickCount struct {
	ClickKey
	N int64 `json:"n"`
}

// ClickBatch is one broker message: counts under one id, so that a
// redelivered message is recognised and not counted twice.
type ClickBatch struct {
	ID     string       `json:"id"`
	Counts []ClickCount `json:"counts"`
}

// Events is the number of clicks in the batch.
func (b ClickBatch) Events() int64 {
	var n int64
	for _, c := range b.Counts {
		n += c.N
	}
	return n
}

type clickMetrics struct {
	recorded, dropped, published, counted, duplicates prometheus.Counter
	publishErrors, flushErrors                        prometheus.Counter
}

func newClickMetrics(reg prometheus.Registerer) *clickMetrics {
	c := func(name, help string) prometheus.Counter {
		ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_shortener_" + name, Help: help})
		reg.MustRegister(ctr)
		return ctr
	}
	return &clickMetrics{
		recorded:      c("click_events_recorded_total", "Click events taken from redirects."),
		dropped:       c("click_events_dropped_total", "Click events dropped because the buffer was full or the broker failed."),
		published:     c("click_events_published_total", "Click events the broker confirmed."),
		counted:       c("click_events_counted_total", "Click events added to the SQL aggregates."),
		duplicates:    c("click_batches_duplicate_total", "Redelivered click batches skipped because they were already counted."),
		publishErrors: c("click_publish_errors_total", "Failed publishes of click batches."),
		flushErrors:   c("click_flush_errors_total", "Failed aggregate transactions (batches are redelivered)."),
	}
}

// clickPublisher takes events off the redirect path. Record never blocks:
// when the buffer is full the event is dropped and counted.
type clickPublisher struct {
	br      publisher
	events  chan ClickEvent
	metrics *clickMetrics
	logger  *slog.Logger
	done    chan struct{}
}

// publisher is what the click publisher needs of a broker.
type publisher interface {
	Publish(ctx context.Context, topic string, data []byte) error
}

func newClickPublisher(br publisher, buffer int, m *clickMetrics, logger *slog.Logger) *clickPublisher {
	p := &clickPublisher{br: br, events: make(chan ClickEvent, buffer), metrics: m, logger: logger, done: make(chan struct{})}
	go p.run()
	return p
}

// Record queues an event, or drops it if the buffer is full.
func (p *clickPublisher) Record(e ClickEvent) {
	select {
	case p.events <- e:
		p.metrics.recorded.Inc()
	default:
		p.metrics.dropped.Inc()
	}
}

// run counts events and publishes the counts until the channel is closed,
// then publishes what is left.
func (p *clickPublisher) run() {
	defer close(p.done)
	tick := time.NewTicker(publishEvery)
	defer tick.Stop()
	counts := map[ClickKey]int64{}
	var day string
	var dayStart int64 // unix ms of the UTC day in day; saves formatting per event
	for {
		select {
		case e, ok := <-p.events:
			if !ok {
				p.publish(counts)
				return
			}
			if e.At < dayStart || e.At >= dayStart+86_400_000 {
				t := time.UnixMilli(e.At).UTC()
				day = t.Format(time.DateOnly)
				dayStart = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).UnixMilli()
			}
			counts[ClickKey{Code: e.Code, Day: day, Referrer: e.Referrer, Agent: e.Agent}]++
			if len(counts) >= maxBatchKeys {
				p.publish(counts)
				counts = map[ClickKey]int64{}
			}
		case <-tick.C:
			if len(counts) > 0 {
				p.publish(counts)
				counts = map[ClickKey]int64{}
			}
		}
	}
}

// publish sends one batch, retrying twice; after that the events are
// dropped (and counted), because holding them would stall the buffer and
// a broker outage must not reach the redirects.
func (p *clickPublisher) publish(counts map[ClickKey]int64) {
	if len(counts) == 0 {
		return
	}
	batch := ClickBatch{ID: batchID(), Counts: make([]ClickCount, 0, len(counts))}
	for k, n := range counts {
		batch.Counts = append(batch.Counts, ClickCount{ClickKey: k, N: n})
	}
	events := batch.Events()
	data, err := json.Marshal(batch)
	if err != nil {
		p.metrics.dropped.Add(float64(events))
		return
	}
	err = resilience.Retry(context.Background(), resilience.Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, Attempts: 3},
		func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err := p.br.Publish(ctx, clicksTopic, data)
			if err != nil {
				p.metrics.publishErrors.Inc()
			}
			return err
		})
	if err == nil {
		p.metrics.published.Add(float64(events))
		return
	}
	p.logger.Warn("shortener: dropping click events; broker unavailable", "events", events, "err", err)
	p.metrics.dropped.Add(float64(events))
}

// Close flushes buffered events (bounded by the publish timeouts).
func (p *clickPublisher) Close() {
	close(p.events)
	<-p.done
}

func batchID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// clickAggregator is one member of the consumer group: it collects
// delivered batches and counts them in one transaction per flush, then acks
// them; on failure it naks them so they come back.
type clickAggregator struct {
	store   *store
	metrics *clickMetrics
	logger  *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	pending []pendingBatch
	keys    int
	kick    chan struct{}

	consumer broker.Consumer
	stop     chan struct{}
	done     chan struct{}
}

type pendingBatch struct {
	msg   *broker.Message
	batch ClickBatch
}

func startClickAggregator(ctx context.Context, br broker.Broker, st *store, m *clickMetrics, logger *slog.Logger) (*clickAggregator, error) {
	a := &clickAggregator{store: st, metrics: m, logger: logger, now: time.Now,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	a.consumer, err = br.Consume(ctx, clicksTopic, clicksGroup, a.handle)
	if err != nil {
		return nil, err
	}
	go a.run()
	return a, nil
}

func (a *clickAggregator) handle(_ context.Context, m *broker.Message) {
	var b ClickBatch
	if err := json.Unmarshal(m.Data, &b); err != nil || b.ID == "" {
		a.logger.Warn("shortener: discarding malformed click batch", "err", err)
		_ = m.Ack() // redelivering it would not make it parse
		return
	}
	a.mu.Lock()
	a.pending = append(a.pending, pendingBatch{msg: m, batch: b})
	a.keys += len(b.Counts)
	full := a.keys >= flushKeys
	a.mu.Unlock()
	if full {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

func (a *clickAggregator) run() {
	defer close(a.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		select {
		case <-a.stop:
			a.flush()
			return
		case <-tick.C:
			a.flush()
		case <-a.kick:
			a.flush()
		case <-prune.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := a.store.pruneBatches(ctx, a.now().Add(-7*24*time.Hour)); err != nil {
				a.logger.Warn("shortener: pruning counted click batches", "err", err)
			}
			cancel()
		}
	}
}

func (a *clickAggregator) flush() {
	a.mu.Lock()
	pending := a.pending
	a.pending, a.keys = nil, 0
	a.mu.Unlock()
	if len(pending) == 0 {
		return
	}
	batches := make([]ClickBatch, len(pending))
	for i, p := range pending {
		batches[i] = p.batch
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counted, skipped, err := a.store.applyBatches(ctx, batches, a.now())
	if err != nil {
		a.metrics.flushErrors.Inc()
		a.logger.Warn("shortener: counting clicks failed; batches will be redelivered", "batches", len(pending), "err", err)
		for _, p := range pending {
			_ = p.msg.Nak()
		}
		return
	}
	a.metrics.counted.Add(float64(counted))
	a.metrics.duplicates.Add(float64(skipped))
	for _, p := range pending {
		_ = p.msg.Ack()
	}
}

// Close stops consuming, counts what was delivered, and acks it.
func (a *clickAggregator) Close() {
	a.consumer.Stop()
	close(a.stop)
	<-a.done
}
