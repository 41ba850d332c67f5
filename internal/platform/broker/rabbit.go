package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Rabbit is the RabbitMQ engine (see doc.go for the mapping).
type Rabbit struct {
	url  string
	opts Options

	mu        sync.Mutex
	conn      *amqp.Connection
	pub       *amqp.Channel // confirm mode
	lastDial  time.Time
	declared  map[string]bool // exchanges declared on the current connection
	closed    bool
	consumers map[Consumer]struct{} // stopped by Close
}

var _ Broker = (*Rabbit)(nil)

func openRabbit(_ context.Context, url string, opts Options) (*Rabbit, error) {
	r := &Rabbit{url: url, opts: opts, consumers: map[Consumer]struct{}{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.dialLocked(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Rabbit) exchange(topic string) string { return r.opts.Namespace + "." + topic }
func (r *Rabbit) queue(topic, group string) string {
	return r.opts.Namespace + "." + topic + "." + group
}

// dialLocked (re)opens the connection and the confirm-mode publish channel.
func (r *Rabbit) dialLocked() error {
	r.lastDial = time.Now()
	conn, err := amqp.DialConfig(r.url, amqp.Config{Heartbeat: 10 * time.Second, Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return fmt.Errorf("broker: connect rabbitmq: %w", err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("broker: rabbitmq publish channel: %w", err)
	}
	r.conn, r.pub, r.declared = conn, ch, map[string]bool{}
	return nil
}

// publishChannel returns a live publish channel, redialling at most once per
// second so that an outage makes publishes fail fast rather than pile up.
func (r *Rabbit) publishChannel(topic string) (*amqp.Channel, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.liveLocked(); err != nil {
		return nil, err
	}
	if !r.declared[topic] {
		if err := r.pub.ExchangeDeclare(r.exchange(topic), "fanout", true, false, false, false, nil); err != nil {
			return nil, fmt.Errorf("broker: declare exchange %s: %w", r.exchange(topic), err)
		}
		r.declared[topic] = true
	}
	return r.pub, nil
}

// liveLocked makes sure the publish connection is up.
func (r *Rabbit) liveLocked() error {
	if r.closed {
		return errors.New("broker: closed")
	}
	if r.conn == nil || r.conn.IsClosed() || r.pub.IsClosed() {
		if time.Since(r.lastDial) < time.Second {
			return errors.New("broker: rabbitmq connection is down")
		}
		if r.conn != nil {
			r.conn.Close()
		}
		return r.dialLocked()
	}
	return nil
}

// Publish implements Broker: a persistent message, returned after the confirm.
func (r *Rabbit) Publish(ctx context.Context, topic string, data []byte) error {
	p, err := r.PublishAsync(ctx, topic, data)
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// PublishAsync implements Broker: the message goes out on the one confirm
// channel (in call order) and Wait waits for its confirm.
func (r *Rabbit) PublishAsync(ctx context.Context, topic string, data []byte) (Pending, error) {
	if err := checkNames(topic); err != nil {
		return nil, err
	}
	ch, err := r.publishChannel(topic)
	if err != nil {
		return nil, err
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, r.exchange(topic), "", false, false, amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		ContentType:  "application/octet-stream",
		Body:         data,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return rabbitPending{conf: conf, topic: topic}, nil
}

type rabbitPending struct {
	conf  *amqp.DeferredConfirmation
	topic string
}

func (p rabbitPending) Wait(ctx context.Context) error {
	ok, err := p.conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("broker: publish %s: waiting for confirm: %w", p.topic, err)
	}
	if !ok {
		return fmt.Errorf("broker: publish %s: rabbitmq nacked the message", p.topic)
	}
	return nil
}

// Consume implements Broker. The consumer runs on its own connection so that
// a slow handler never stalls publishers, and re-subscribes after failures.
func (r *Rabbit) Consume(ctx context.Context, topic, group string, h Handler, opts ...ConsumeOption) (Consumer, error) {
	if err := checkNames(topic, group); err != nil {
		return nil, err
	}
	c := &rabbitConsumer{r: r, topic: topic, group: group, h: h, stop: make(chan struct{}), done: make(chan struct{}),
		prefetch: r.opts.Prefetch}
	if o := memberOptions(opts); o.prefetch > 0 {
		c.prefetch = o.prefetch
	}
	// The first subscription is synchronous so that declaration errors reach
	// the caller and the queue exists when Consume returns.
	conn, deliveries, err := c.subscribe()
	if err != nil {
		return nil, err
	}
	if err := r.track(c, conn); err != nil {
		return nil, err
	}
	go c.run(conn, deliveries)
	return c, nil
}

// track registers a consumer for Close, unless the broker is closed.
func (r *Rabbit) track(c Consumer, conn *amqp.Connection) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		conn.Close()
		return errors.New("broker: closed")
	}
	r.consumers[c] = struct{}{}
	return nil
}

func (r *Rabbit) untrack(c Consumer) {
	r.mu.Lock()
	delete(r.consumers, c)
	r.mu.Unlock()
}

type rabbitConsumer struct {
	r            *Rabbit
	topic, group string
	h            Handler
	prefetch     int
	stop, done   chan struct{}
	once         sync.Once
}

func (c *rabbitConsumer) subscribe() (*amqp.Connection, <-chan amqp.Delivery, error) {
	return c.r.consumeQueue(c.topic, c.r.queue(c.topic, c.group), c.r.groupArgs(), nil, c.prefetch)
}

func (r *Rabbit) groupArgs() amqp.Table {
	if r.opts.GroupExpiry > 0 {
		return amqp.Table{"x-expires": r.opts.GroupExpiry.Milliseconds()}
	}
	return nil
}

// Declare implements Broker: the group's queue, bound to the topic's
// exchange, exists when it returns.
func (r *Rabbit) Declare(ctx context.Context, topic, group string, _ ...ConsumeOption) error {
	if err := checkNames(topic, group); err != nil {
		return err
	}
	conn, err := amqp.DialConfig(r.url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return fmt.Errorf("broker: connect rabbitmq: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("broker: open channel: %w", err)
	}
	return r.declareQueue(ch, topic, r.queue(topic, group), r.groupArgs())
}

func (r *Rabbit) declareQueue(ch *amqp.Channel, topic, q string, queueArgs amqp.Table) error {
	ex := r.exchange(topic)
	if err := ch.ExchangeDeclare(ex, "fanout", true, false, false, false, nil); err != nil {
		return fmt.Errorf("broker: declare exchange %s: %w", ex, err)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, queueArgs); err != nil {
		return fmt.Errorf("broker: declare queue %s: %w", q, err)
	}
	if err := ch.QueueBind(q, "", ex, false, nil); err != nil {
		return fmt.Errorf("broker: bind queue %s: %w", q, err)
	}
	return nil
}

// consumeQueue opens a connection of its own (a slow consumer never stalls
// publishers), declares the topic's exchange and the queue bound to it,
// and starts consuming with prefetch messages outstanding at most.
func (r *Rabbit) consumeQueue(topic, q string, queueArgs, consumeArgs amqp.Table, prefetch int) (*amqp.Connection, <-chan amqp.Delivery, error) {
	conn, err := amqp.DialConfig(r.url, amqp.Config{Heartbeat: 10 * time.Second, Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, nil, fmt.Errorf("broker: connect rabbitmq: %w", err)
	}
	fail := func(what string, err error) (*amqp.Connection, <-chan amqp.Delivery, error) {
		conn.Close()
		return nil, nil, fmt.Errorf("broker: %s: %w", what, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fail("set prefetch", err)
	}
	if err := r.declareQueue(ch, topic, q, queueArgs); err != nil {
		conn.Close()
		return nil, nil, err
	}
	deliveries, err := ch.Consume(q, "", false, false, false, false, consumeArgs)
	if err != nil {
		return fail("consume "+q, err)
	}
	return conn, deliveries, nil
}

func (c *rabbitConsumer) run(conn *amqp.Connection, deliveries <-chan amqp.Delivery) {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resubscribe(c.stop, conn, deliveries, c.subscribe, func(d <-chan amqp.Delivery) { c.deliver(ctx, d) },
		"topic", c.topic, "group", c.group)
}

// resubscribe runs deliver on each subscription until stop, and after a
// lost connection subscribes again with a doubling backoff (0.1 s to 5 s).
func resubscribe(stop <-chan struct{}, conn *amqp.Connection, deliveries <-chan amqp.Delivery,
	subscribe func() (*amqp.Connection, <-chan amqp.Delivery, error), deliver func(<-chan amqp.Delivery), logArgs ...any) {
	backoff := 100 * time.Millisecond
	for {
		if conn != nil {
			deliver(deliveries)
			conn.Close()
			conn = nil
		}
		select {
		case <-stop:
			return
		case <-time.After(backoff):
		}
		var err error
		conn, deliveries, err = subscribe()
		if err != nil {
			slog.Warn("broker: rabbitmq resubscribe failed", append(logArgs, "err", err)...)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// deliver hands deliveries to the handler until the channel closes or Stop.
func (c *rabbitConsumer) deliver(ctx context.Context, deliveries <-chan amqp.Delivery) {
	for {
		select {
		case <-c.stop:
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			c.h(ctx, &Message{
				Topic:       c.topic,
				Data:        d.Body,
				Redelivered: d.Redelivered,
				ack:         func() error { return d.Ack(false) },
				nak:         func() error { return d.Nack(false, true) },
			})
		}
	}
}

func (c *rabbitConsumer) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	c.r.untrack(c)
}

// Ping implements Broker.
func (r *Rabbit) Ping(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.liveLocked()
}

// Close stops every consumer, then closes the publish connection.
func (r *Rabbit) Close() error {
	r.mu.Lock()
	r.closed = true
	conn := r.conn
	active := make([]Consumer, 0, len(r.consumers))
	for c := range r.consumers {
		active = append(active, c)
	}
	r.mu.Unlock()
	for _, c := range active {
		c.Stop()
	}
	if conn != nil && !conn.IsClosed() {
		return conn.Close()
	}
	return nil
}
