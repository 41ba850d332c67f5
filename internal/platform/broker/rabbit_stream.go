package broker

import (
	"context"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Subscribe implements Broker on a RabbitMQ stream queue (NS.topic.stream)
// bound to the topic's exchange. A classic queue per subscriber would not
// do: two publishers' messages can reach two queues in different orders,
// while a stream is one log that every subscriber reads in the same order.
// Each subscriber starts at the log's end ("next") and, after a reconnect,
// at the offset after the last one it handled, so it sees no gap while the
// stream retains the messages (one hour, at most 1 GiB).
func (r *Rabbit) Subscribe(ctx context.Context, topic string, h func(data []byte)) (Consumer, error) {
	if err := checkNames(topic); err != nil {
		return nil, err
	}
	s := &rabbitSubscriber{r: r, topic: topic, h: h, next: -1, stop: make(chan struct{}), done: make(chan struct{})}
	conn, deliveries, err := s.subscribe()
	// A stream queue declared a moment ago by another connection may not
	// have its replica ready yet: RabbitMQ refuses the consumer with 406
	// "does not have a replica on the local node" for a few milliseconds,
	// and under many subscribers joining at once with 541 INTERNAL_ERROR.
	for wait := 20 * time.Millisecond; err != nil && transientStreamError(err) && wait < 3*time.Second; wait *= 2 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		conn, deliveries, err = s.subscribe()
	}
	if err != nil {
		return nil, err
	}
	if err := r.track(s, conn); err != nil {
		return nil, err
	}
	go s.run(conn, deliveries)
	return s, nil
}

func transientStreamError(err error) bool {
	return strings.Contains(err.Error(), "does not have a replica") || strings.Contains(err.Error(), "(541)")
}

// StreamQueue is the name of a topic's stream queue on RabbitMQ (tests
// delete it: stream queues do not expire).
func StreamQueue(namespace, topic string) string { return namespace + "." + topic + ".stream" }

type rabbitSubscriber struct {
	r          *Rabbit
	topic      string
	h          func([]byte)
	next       int64 // offset to resume at; -1: the log's end
	stop, done chan struct{}
	once       sync.Once
}

func (s *rabbitSubscriber) subscribe() (*amqp.Connection, <-chan amqp.Delivery, error) {
	var offset any = "next"
	if s.next >= 0 {
		offset = s.next
	}
	return s.r.consumeQueue(s.topic, StreamQueue(s.r.opts.Namespace, s.topic),
		amqp.Table{"x-queue-type": "stream", "x-max-age": "1h", "x-max-length-bytes": int64(1 << 30)},
		amqp.Table{"x-stream-offset": offset}, s.r.opts.Prefetch)
}

func (s *rabbitSubscriber) run(conn *amqp.Connection, deliveries <-chan amqp.Delivery) {
	defer close(s.done)
	resubscribe(s.stop, conn, deliveries, s.subscribe, s.deliver, "topic", s.topic, "subscriber", true)
}

// deliver hands messages to h until the channel closes or Stop. Credit goes
// back in batches (multiple acks) so that acking costs little.
func (s *rabbitSubscriber) deliver(deliveries <-chan amqp.Delivery) {
	batch := max(1, s.r.opts.Prefetch/4)
	unacked := 0
	for {
		select {
		case <-s.stop:
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			// A resumed consumer starts at the chunk holding the offset, so
			// it may see a few messages again: skip them.
			off, hasOffset := d.Headers["x-stream-offset"].(int64)
			if hasOffset && s.next >= 0 && off < s.next {
				_ = d.Ack(false)
				continue
			}
			s.h(d.Body)
			if hasOffset {
				s.next = off + 1
			}
			if unacked++; unacked >= batch || len(deliveries) == 0 {
				_ = d.Ack(true)
				unacked = 0
			}
		}
	}
}

func (s *rabbitSubscriber) Stop() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.r.untrack(s)
}
