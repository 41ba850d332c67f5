package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Backlog is what a consumer group has still to settle on a topic.
type Backlog struct {
	Ready int64 // stored and not yet delivered to any member
	// Unacked were delivered and are neither acked nor returned yet; -1
	// when the engine does not say (AMQP tells a client only the ready
	// count; a member's unacked messages go back to ready when its
	// connection closes).
	Unacked int64
}

// BacklogReader is a Broker that can tell a group's backlog: for a queue
// depth on a dashboard, or for a test to wait until nothing is left to
// redeliver.
type BacklogReader interface {
	Backlog(ctx context.Context, topic, group string) (Backlog, error)
}

// ErrNoGroup is Backlog's answer for a group that never consumed the topic.
var ErrNoGroup = errors.New("broker: no such consumer group")

var (
	_ BacklogReader = (*NATS)(nil)
	_ BacklogReader = (*Rabbit)(nil)
)

// Backlog implements BacklogReader from the durable consumer's info: the
// messages it has pending delivery and those delivered awaiting an ack
// (which includes any whose ack wait expired before redelivery).
func (b *NATS) Backlog(ctx context.Context, topic, group string) (Backlog, error) {
	if err := checkNames(topic, group); err != nil {
		return Backlog{}, err
	}
	cons, err := b.js.Consumer(ctx, b.stream(topic), group)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return Backlog{}, fmt.Errorf("%w: %s/%s", ErrNoGroup, topic, group)
	}
	if err != nil {
		return Backlog{}, fmt.Errorf("broker: consumer %s/%s: %w", topic, group, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return Backlog{}, fmt.Errorf("broker: consumer %s/%s info: %w", topic, group, err)
	}
	return Backlog{Ready: int64(info.NumPending), Unacked: int64(info.NumAckPending)}, nil
}

// Backlog implements BacklogReader with a passive queue declare, which
// reports the ready count only.
func (r *Rabbit) Backlog(ctx context.Context, topic, group string) (Backlog, error) {
	if err := checkNames(topic, group); err != nil {
		return Backlog{}, err
	}
	r.mu.Lock()
	err := r.liveLocked()
	var conn = r.conn
	r.mu.Unlock()
	if err != nil {
		return Backlog{}, err
	}
	// A failed passive declare closes its channel, so it gets one of its own.
	ch, err := conn.Channel()
	if err != nil {
		return Backlog{}, fmt.Errorf("broker: rabbitmq channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(r.queue(topic, group), true, false, false, false, nil)
	if err != nil {
		return Backlog{}, fmt.Errorf("%w: %s/%s (%v)", ErrNoGroup, topic, group, err)
	}
	return Backlog{Ready: int64(q.Messages), Unacked: -1}, nil
}
