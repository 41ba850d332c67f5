package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/resilience"
)

// BatchConfig bounds the batches of a BatchConsumer.
type BatchConfig struct {
	Size int           // messages per batch at most (or Weight, when set)
	Wait time.Duration // how long the first message of a batch waits for company
	// Weight, when set, is what a message counts towards Size — e.g. the
	// records it carries, when publishers pack several into one message.
	// A batch closes once it reaches Size, so it may exceed Size by less
	// than one message's weight.
	Weight func(*Message) int
	// WriteTimeout bounds one call of the write function (default 30 s).
	WriteTimeout time.Duration
}

func (c *BatchConfig) validate() error {
	if c.Size < 1 || c.Size > 100_000 {
		return fmt.Errorf("broker: batch size must be 1–100000, got %d", c.Size)
	}
	if c.Wait <= 0 {
		return errors.New("broker: batch wait must be > 0")
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	return nil
}

// WriteBatch applies a batch, all or nothing. Messages it cannot use (a
// payload that will never decode) it should count and skip: they are
// acked with the batch, so that they do not come back for ever.
type WriteBatch func(ctx context.Context, batch []*Message) error

// BatchConsumer is one member of a consumer group that hands its messages
// to a write function in batches, bounded in size and in waiting time, and
// acks a batch only after the write succeeded. A failed write is retried
// with backoff. A crash between the write and the acks redelivers the
// batch, so the write must be idempotent (e.g. keyed by message IDs): the
// result is at-least-once delivery with exactly-once effects.
type BatchConsumer struct {
	cfg      BatchConfig
	write    WriteBatch
	logger   *slog.Logger
	in       chan *Message
	cons     Consumer
	stopping chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	onRetry  func(err error) // after each failed write; may be nil
}

// ConsumeBatches joins group on topic and starts writing batches.
// onRetry (may be nil) is called after each failed write, for metrics.
func ConsumeBatches(ctx context.Context, b Broker, topic, group string, cfg BatchConfig, write WriteBatch, onRetry func(error), logger *slog.Logger) (*BatchConsumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &BatchConsumer{
		cfg: cfg, write: write, logger: logger, onRetry: onRetry,
		in: make(chan *Message, cfg.Size), stopping: make(chan struct{}), done: make(chan struct{}),
	}
	cons, err := b.Consume(ctx, topic, group, func(_ context.Context, m *Message) {
		select {
		case c.in <- m:
		case <-c.stopping: // not settled: it will be redelivered
		}
	})
	if err != nil {
		return nil, err
	}
	c.cons = cons
	go c.loop()
	return c, nil
}

func (c *BatchConsumer) loop() {
	defer close(c.done)
	batch := make([]*Message, 0, c.cfg.Size)
	weight := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case m := <-c.in:
			if len(batch) == 0 {
				timer.Reset(c.cfg.Wait)
			}
			batch = append(batch, m)
			if c.cfg.Weight != nil {
				weight += max(1, c.cfg.Weight(m))
			} else {
				weight++
			}
			if weight < c.cfg.Size {
				continue
			}
			timer.Stop()
		case <-timer.C:
		case <-c.stopping:
			timer.Stop()
			for drained := false; !drained; { // what was handed over is written too
				select {
				case m := <-c.in:
					batch = append(batch, m)
				default:
					drained = true
				}
			}
			c.flush(batch)
			return
		}
		if len(batch) > 0 {
			c.flush(batch)
			batch = batch[:0]
			weight = 0
		}
	}
}

// flush writes a batch, retrying with backoff until it succeeds, then acks
// it. If the consumer is stopped meanwhile it gives up without acking, and
// the broker redelivers the batch to another member.
func (c *BatchConsumer) flush(batch []*Message) {
	if len(batch) == 0 {
		return
	}
	// Retry until the write succeeds; once the consumer is stopping, for
	// at most 5 s more (then unacked: redelivered to another member, or to
	// us after a restart).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-c.stopping:
			if resilience.Sleep(ctx, 5*time.Second) {
				cancel()
			}
		case <-ctx.Done():
		}
	}()
	err := resilience.Retry(ctx, resilience.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}, func(ctx context.Context) error {
		// The write in progress is not cut short by the stop: it finishes
		// or meets its own timeout.
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.WriteTimeout)
		defer wcancel()
		err := c.write(wctx, batch)
		if err != nil {
			if c.onRetry != nil {
				c.onRetry(err)
			}
			c.logger.Warn("broker: batch write failed; retrying", "messages", len(batch), "err", err)
		}
		return err
	})
	if err != nil {
		return
	}
	for _, m := range batch {
		_ = m.Ack()
	}
}

// Close writes what it holds, then leaves the group.
func (c *BatchConsumer) Close() {
	c.stopOnce.Do(func() {
		close(c.stopping)
		<-c.done
		c.cons.Stop()
	})
}
