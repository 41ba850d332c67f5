package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// PersisterConfig tunes the persister.
type PersisterConfig struct {
	Group     string        // broker consumer group shared by every persister
	BatchSize int           // rows per transaction at most
	BatchWait time.Duration // how long the first message of a batch waits for company
}

// DefaultPersisterConfig is what `scalelab chat persist` starts with.
func DefaultPersisterConfig() PersisterConfig {
	return PersisterConfig{Group: "persister", BatchSize: 1000, BatchWait: 50 * time.Millisecond}
}

func (c PersisterConfig) validate() error {
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		return fmt.Errorf("chat: batch size must be 1–100000, got %d", c.BatchSize)
	}
	if c.BatchWait <= 0 {
		return errors.New("chat: batch wait must be > 0")
	}
	return nil
}

// Persister consumes every room's messages as one member of a consumer
// group and writes them in batches: one transaction per batch, acks after
// the commit, never before. A crash between commit and ack redelivers the
// batch, and the insert skips IDs already stored: at-least-once delivery,
// exactly-once rows. Several persisters share the group's messages.
type Persister struct {
	cfg      PersisterConfig
	store    *Store
	logger   *slog.Logger
	metrics  *persistMetrics
	in       chan *broker.Message
	cons     broker.Consumer
	stopping chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// StartPersister joins the group and starts writing.
func StartPersister(ctx context.Context, cfg PersisterConfig, b broker.Broker, st *Store, reg prometheus.Registerer, logger *slog.Logger) (*Persister, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Persister{
		cfg: cfg, store: st, logger: logger, metrics: newPersistMetrics(reg),
		in: make(chan *broker.Message, cfg.BatchSize), stopping: make(chan struct{}), done: make(chan struct{}),
	}
	cons, err := b.Consume(ctx, Topic, cfg.Group, func(_ context.Context, m *broker.Message) {
		select {
		case p.in <- m:
		case <-p.stopping: // not settled: it will be redelivered
		}
	})
	if err != nil {
		return nil, fmt.Errorf("chat: persister: %w", err)
	}
	p.cons = cons
	go p.loop()
	return p, nil
}

func (p *Persister) loop() {
	defer close(p.done)
	batch := make([]*broker.Message, 0, p.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case m := <-p.in:
			if len(batch) == 0 {
				timer.Reset(p.cfg.BatchWait)
			}
			batch = append(batch, m)
			if len(batch) < p.cfg.BatchSize {
				continue
			}
			timer.Stop()
		case <-timer.C:
		case <-p.stopping:
			timer.Stop()
			for drained := false; !drained; { // what was handed over is written too
				select {
				case m := <-p.in:
					batch = append(batch, m)
				default:
					drained = true
				}
			}
			p.flush(batch)
			return
		}
		if len(batch) > 0 {
			p.flush(batch)
			batch = batch[:0]
		}
	}
}

// flush writes a batch, retrying with backoff until it commits, then acks
// it. If the persister is stopped meanwhile it gives up without acking,
// and the broker redelivers the batch to another member.
func (p *Persister) flush(batch []*broker.Message) {
	if len(batch) == 0 {
		return
	}
	start := time.Now()
	rows := make([]Row, 0, len(batch))
	for _, m := range batch {
		row, err := decodeRow(m.Data)
		if err != nil { // it will never decode: settle it so it does not come back forever
			p.metrics.rejected.Inc()
			p.logger.Error("chat: persister drops a malformed message", "err", err)
			_ = m.Ack()
			continue
		}
		rows = append(rows, row)
	}
	backoff := 100 * time.Millisecond
	var inserted int64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := p.store.Insert(ctx, rows)
		cancel()
		if err == nil {
			inserted = n
			break
		}
		p.metrics.errors.Inc()
		p.logger.Warn("chat: batch insert failed; retrying", "rows", len(rows), "backoff", backoff, "err", err)
		if p.isStopping() && time.Since(start) > 5*time.Second {
			return // unacked: redelivered to another member, or to us after a restart
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
	for _, m := range batch {
		_ = m.Ack()
	}
	p.metrics.persisted.Add(float64(inserted))
	p.metrics.duplicates.Add(float64(int64(len(rows)) - inserted))
	p.metrics.batchSize.Observe(float64(len(rows)))
	p.metrics.batchSeconds.Observe(time.Since(start).Seconds())
}

func (p *Persister) isStopping() bool {
	select {
	case <-p.stopping:
		return true
	default:
		return false
	}
}

func decodeRow(data []byte) (Row, error) {
	_, body, err := SplitWire(data)
	if err != nil {
		return Row{}, err
	}
	var m Outbound
	if err := json.Unmarshal(body, &m); err != nil {
		return Row{}, fmt.Errorf("chat: broker message: %w", err)
	}
	return RowFromOutbound(&m)
}

// Close writes what it holds, then leaves the group.
func (p *Persister) Close() {
	p.stopOnce.Do(func() {
		close(p.stopping)
		<-p.done
		p.cons.Stop()
	})
}

type persistMetrics struct {
	persisted, duplicates, rejected, errors prometheus.Counter
	batchSize, batchSeconds                 prometheus.Histogram
}

func newPersistMetrics(reg prometheus.Registerer) *persistMetrics {
	m := &persistMetrics{
		persisted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persisted_total", Help: "Messages written to the database (new rows)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persist_duplicates_total", Help: "Redelivered messages whose row already existed (skipped)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persist_rejected_total", Help: "Broker messages that could not be decoded (dropped)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persist_errors_total", Help: "Failed batch inserts (each retried)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "scalelab_chat_persist_batch_rows", Help: "Rows per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "scalelab_chat_persist_batch_seconds", Help: "Time to write and commit one batch (retries included).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
	}
	reg.MustRegister(m.persisted, m.duplicates, m.rejected, m.errors, m.batchSize, m.batchSeconds)
	return m
}
