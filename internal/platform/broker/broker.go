package broker

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Broker publishes to topics and consumes them in groups (see doc.go).
type Broker interface {
	Publish(ctx context.Context, topic string, data []byte) error
	Consume(ctx context.Context, topic, group string, h Handler, opts ...ConsumeOption) (Consumer, error)
	// Declare makes sure group exists, so that it keeps every message
	// published from now on even before a member joins (a work queue
	// whose producer may start before its consumers). Of opts only the
	// group's own (GroupAckWait) apply.
	Declare(ctx context.Context, topic, group string, opts ...ConsumeOption) error
	// PublishAsync sends data without waiting for the broker's ack and
	// returns the publish in flight; its Wait gives Publish's outcome.
	// Messages one goroutine publishes this way are stored in call order,
	// so a sender can pipeline without reordering. data must not be
	// modified afterwards.
	PublishAsync(ctx context.Context, topic string, data []byte) (Pending, error)
	// Subscribe hands h every message published to topic after the
	// subscription started, one at a time, in the topic's order, which is
	// the same for every subscriber. It is fan-out to live listeners, not a
	// group: nothing is settled and nothing outlives the subscriber. It
	// resumes without a gap after a broker reconnect, as long as the broker
	// still holds the messages it missed.
	Subscribe(ctx context.Context, topic string, h func(data []byte)) (Consumer, error)
	Ping(ctx context.Context) error
	Close() error
}

// Handler receives messages one at a time per consumer; it must arrange for
// each message to be acked or naked, now or later.
type Handler func(ctx context.Context, m *Message)

// Pending is a publish in flight.
type Pending interface {
	// Wait returns nil once the broker has durably accepted the message, or
	// the reason it may not have.
	Wait(ctx context.Context) error
}

// Consumer is one member of a consumer group.
type Consumer interface {
	// Stop stops receiving; unsettled messages will be redelivered.
	Stop()
}

// Message is one delivery.
type Message struct {
	Topic       string
	Data        []byte
	Redelivered bool
	ack, nak    func() error
	inProgress  func() error
}

// InProgress tells the broker that the message is still being worked on,
// so that a handler holding one for longer than AckWait (a task that runs
// for minutes) does not see it redelivered to another member. On NATS it
// restarts the ack timer; RabbitMQ waits for a live channel anyway.
func (m *Message) InProgress() error {
	if m.inProgress == nil {
		return nil
	}
	return m.inProgress()
}

// Ack settles the message for its group.
func (m *Message) Ack() error { return m.ack() }

// Nak asks for the message to be delivered again.
func (m *Message) Nak() error { return m.nak() }

// ConsumeOption tunes one member of a group.
type ConsumeOption func(*consumeOptions)

type consumeOptions struct {
	prefetch int
	ackWait  time.Duration
}

// MemberPrefetch caps the messages this member holds unsettled at n (the
// broker's Prefetch otherwise): a work queue whose tasks take seconds
// takes them one at a time with n = 1, so an idle member is never left
// waiting while a busy one holds tasks it has not started.
func MemberPrefetch(n int) ConsumeOption { return func(o *consumeOptions) { o.prefetch = n } }

// GroupAckWait sets how long NATS waits before it redelivers a message a
// member of this group took and did not settle (the broker's AckWait
// otherwise): a group whose members settle in milliseconds, and whose
// messages must not wait 30 s behind a crashed member, sets it short.
// It belongs to the group: the last member to join sets it. RabbitMQ
// redelivers when the member's channel closes, and ignores it.
func GroupAckWait(d time.Duration) ConsumeOption { return func(o *consumeOptions) { o.ackWait = d } }

func memberOptions(opts []ConsumeOption) consumeOptions {
	var o consumeOptions
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// Options tune an engine. Zero values take the defaults.
type Options struct {
	Namespace string        // prefix of every stream/exchange/queue name (default "scalelab")
	DataDir   string        // where the embedded NATS server keeps its streams (default ./data)
	AckWait   time.Duration // NATS: redelivery delay of an unsettled message (default 30s)
	Prefetch  int           // outstanding messages per consumer (default 256)
	// GroupExpiry, when set, lets RabbitMQ delete a group's queue after it
	// has had no consumer for that long (x-expires). Tests set it so that
	// their queues do not outlive them; 0 keeps queues forever.
	GroupExpiry time.Duration
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = "scalelab"
	}
	if o.DataDir == "" {
		o.DataDir = "data"
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Prefetch <= 0 {
		o.Prefetch = 256
	}
}

// Open connects to the broker named by rawURL.
func Open(ctx context.Context, rawURL string, opts Options) (Broker, error) {
	opts.defaults()
	if !validName.MatchString(opts.Namespace) {
		return nil, fmt.Errorf("broker: namespace %q must match %s", opts.Namespace, validName)
	}
	switch {
	case rawURL == "" || rawURL == "embedded://":
		return openEmbeddedNATS(ctx, opts)
	case strings.HasPrefix(rawURL, "nats://"), strings.HasPrefix(rawURL, "tls://"):
		return openNATS(ctx, rawURL, opts)
	case strings.HasPrefix(rawURL, "amqp://"), strings.HasPrefix(rawURL, "amqps://"):
		return openRabbit(ctx, rawURL, opts)
	}
	return nil, fmt.Errorf("broker: unsupported broker URL %q: want embedded://, nats://… or amqp://…", rawURL)
}

// validName is what topic, group and namespace names may hold on every
// engine (NATS stream names refuse dots, so we map them ourselves).
var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func checkNames(names ...string) error {
	for _, n := range names {
		if !validName.MatchString(n) {
			return fmt.Errorf("broker: name %q must match %s", n, validName)
		}
	}
	return nil
}
