package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
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
//
// A batch must never block the stream for good. An entry that decodes but
// cannot be stored (a NUL character: text columns refuse it) is set aside
// in chat_dead_letters before the insert; an entry that does not decode at
// all is dropped and counted (it has no ID to be set aside under). If the
// database refuses the batch while it is up, the refused rows are found by
// halving the batch and set aside (insert). If the database is down, the
// batch fails and is retried: nothing is set aside for an outage.
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
				if err := p.setAsideEntry(ctx, body, err); err != nil {
					return err
				}
				continue
			}
			rows = append(rows, row)
		}
	}
	inserted, err := p.insert(ctx, rows)
	if err != nil {
		return err
	}
	p.metrics.persisted.Add(float64(inserted))
	p.metrics.duplicates.Add(float64(int64(len(rows)) - inserted))
	p.metrics.batchSize.Observe(float64(len(rows)))
	p.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// insert writes rows. When the database refuses them although it answers
// a ping, the rows it refuses are found by halving — O(k log n) inserts for
// k bad rows — and set aside; a single row is tried twice before that, so
// that a passing lock timeout does not set a good row aside.
func (p *Persister) insert(ctx context.Context, rows []Row) (int64, error) {
	n, err := p.store.Insert(ctx, rows)
	if err == nil || len(rows) == 0 {
		return n, err
	}
	if perr := p.store.Ping(ctx); perr != nil || ctx.Err() != nil {
		return 0, err // the database is down: retry the batch later
	}
	if len(rows) == 1 {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if n, again := p.store.Insert(ctx, rows); again == nil {
			return n, nil
		}
		payload, _ := json.Marshal(rows[0])
		return 0, p.setAside(ctx, rows[0].MessageID, err, payload)
	}
	half := len(rows) / 2
	a, err := p.insert(ctx, rows[:half])
	if err != nil {
		return 0, err
	}
	b, err := p.insert(ctx, rows[half:])
	return a + b, err
}

// setAsideEntry sets aside an entry that did not become a row, under its
// message ID if it has one; without one it can only be dropped.
func (p *Persister) setAsideEntry(ctx context.Context, body []byte, cause error) error {
	var m struct {
		MessageID string `json:"messageId"`
	}
	id, err := int64(0), json.Unmarshal(body, &m)
	if err == nil {
		id, err = strconv.ParseInt(m.MessageID, 10, 64)
	}
	if err != nil {
		p.reject(cause)
		return nil
	}
	return p.setAside(ctx, id, cause, body)
}

func (p *Persister) setAside(ctx context.Context, id int64, cause error, payload []byte) error {
	if err := p.store.SetAside(ctx, id, cause.Error(), payload, time.Now()); err != nil {
		return err
	}
	p.metrics.deadLetters.Inc()
	p.logger.Warn("chat: persister set a message aside", "message_id", id, "reason", cause)
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
	persisted, duplicates, rejected, errors, deadLetters prometheus.Counter
	batchSize, batchSeconds                              prometheus.Histogram
}

func newPersistMetrics(reg prometheus.Registerer) *persistMetrics {
	m := &persistMetrics{
		persisted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persisted_total", Help: "Messages written to the database (new rows)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persist_duplicates_total", Help: "Redelivered messages whose row already existed (skipped)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persist_rejected_total", Help: "Broker messages that could not be decoded (dropped)."}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_dead_letters_total", Help: "Messages the store could not hold, set aside in chat_dead_letters."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_chat_persist_errors_total", Help: "Failed batch inserts (each retried)."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "scalelab_chat_persist_batch_rows", Help: "Rows per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "scalelab_chat_persist_batch_seconds", Help: "Time to write and commit one batch (successful attempts).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
	}
	reg.MustRegister(m.persisted, m.duplicates, m.rejected, m.errors, m.deadLetters, m.batchSize, m.batchSeconds)
	return m
}
