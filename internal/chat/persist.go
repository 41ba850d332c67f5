package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// PersisterConfig tunes the persister.
type PersisterConfig struct {
	Group     string        // broker consumer group shared by every persister
	BatchSize int           // rows per transaction at most (exceeded by less than one envelope)
	BatchWait time.Duration // how long the first message of a batch waits for company
}

// DefaultPersisterConfig is what `scalelab chat persist` starts with.
func DefaultPersisterConfig() PersisterConfig {
	return PersisterConfig{Group: "persister", BatchSize: 1000, BatchWait: 50 * time.Millisecond}
}

// Persister consumes every room's messages as one member of a consumer
// group and writes them in batches (broker.BatchConsumer): one transaction
// per batch, acks after the commit, never before. A crash between commit
// and ack redelivers the batch, and the insert skips IDs already stored:
// at-least-once delivery, exactly-once rows. Several persisters share the
// group's messages.
type Persister struct {
	store   *Store
	logger  *slog.Logger
	metrics *persistMetrics
	batches *broker.BatchConsumer
}

// StartPersister joins the group and starts writing.
func StartPersister(ctx context.Context, cfg PersisterConfig, b broker.Broker, st *Store, reg prometheus.Registerer, logger *slog.Logger) (*Persister, error) {
	p := &Persister{store: st, logger: logger, metrics: newPersistMetrics(reg)}
	var err error
	p.batches, err = broker.ConsumeBatches(ctx, b, Topic, cfg.Group, broker.BatchConfig{Size: cfg.BatchSize, Wait: cfg.BatchWait,
		Weight: func(m *broker.Message) int { return CountWire(m.Data) }},
		p.write, func(error) { p.metrics.errors.Inc() }, logger)
	if err != nil {
		return nil, fmt.Errorf("chat: persister: %w", err)
	}
	return p, nil
}

// write stores a batch in one transaction; rows already stored are skipped.
func (p *Persister) write(ctx context.Context, batch []*broker.Message) error {
	start := time.Now()
	rows := make([]Row, 0, len(batch))
	for _, m := range batch {
		for rest := m.Data; len(rest) > 0; {
			_, body, next, err := NextWire(rest)
			if err != nil { // the entries after it cannot be found
				p.reject(err)
				break
			}
			rest = next
			row, err := decodeRow(body)
			if err != nil {
				p.reject(err)
				continue
			}
			rows = append(rows, row)
		}
	}
	inserted, err := p.store.Insert(ctx, rows)
	if err != nil {
		return err
	}
	p.metrics.persisted.Add(float64(inserted))
	p.metrics.duplicates.Add(float64(int64(len(rows)) - inserted))
	p.metrics.batchSize.Observe(float64(len(rows)))
	p.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// reject counts an entry that will never decode: it is acked with its
// batch, so that it does not come back for ever.
func (p *Persister) reject(err error) {
	p.metrics.rejected.Inc()
	p.logger.Error("chat: persister drops a malformed message", "err", err)
}

// decodeRow turns an entry's Outbound JSON into a row.
func decodeRow(body []byte) (Row, error) {
	m, ok := parseOutboundFast(body)
	if !ok {
		if err := json.Unmarshal(body, &m); err != nil {
			return Row{}, fmt.Errorf("chat: broker message: %w", err)
		}
	}
	return RowFromOutbound(&m)
}

// Close writes what it holds, then leaves the group.
func (p *Persister) Close() { p.batches.Close() }

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
			Name: "scalelab_chat_persist_batch_seconds", Help: "Time to write and commit one batch (successful attempts).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
	}
	reg.MustRegister(m.persisted, m.duplicates, m.rejected, m.errors, m.batchSize, m.batchSeconds)
	return m
}
