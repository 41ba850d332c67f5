package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// Publishing in envelopes.
//
// One broker message per chat message made the broker the busiest process
// on the machine: every chat message was a publish, a publish ack, one
// delivery per server and one to a persister, and a persister ack. The
// server therefore packs the messages of all its connections into
// envelopes — one broker message holding up to PublishBatch chat messages —
// the way a Kafka producer batches records or a database groups commits:
//
//   - A message joins the envelope that is open now; nothing waits for
//     company. The publisher takes the open envelope as soon as one of its
//     PublishInFlight slots is free, so at low load every envelope holds one
//     message and leaves at once; under load, messages pile up while the
//     slots wait for acks, and envelopes grow by themselves.
//   - One goroutine takes and publishes envelopes, so they reach the broker
//     in the order they were filled; within one, messages keep the order
//     they were added. Per-connection order and the topic's one order for
//     every subscriber are what they were.
//   - OK still means "the broker has stored this message": the envelope's
//     ack is every one of its messages' ack.
//   - A full envelope with no free slot makes senders wait: the read loops
//     stop reading, and TCP pushes back on the clients.

// envelope is one broker message under construction or in flight. It is
// the Pending of every chat message in it.
type envelope struct {
	data  []byte // wire entries, each followed by '\n' (see AppendEnvelope)
	n     int
	taken chan struct{} // closed when the publisher takes it: room for the next one
	done  chan struct{} // closed once err is final
	err   error
}

func newEnvelope() *envelope {
	return &envelope{taken: make(chan struct{}), done: make(chan struct{})}
}

func (e *envelope) finish(err error) {
	e.err = err
	close(e.done)
}

// Wait implements broker.Pending for each message of the envelope.
func (e *envelope) Wait(ctx context.Context) error {
	select {
	case <-e.done:
		return e.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for the broker's ack: %w", ctx.Err())
	}
}

var errPublisherClosed = errors.New("server shutting down")

// asyncPublisher is the one thing the publisher needs of a broker.
type asyncPublisher interface {
	PublishAsync(ctx context.Context, topic string, data []byte) (broker.Pending, error)
}

// publisher packs messages into envelopes and publishes them in order.
type publisher struct {
	broker   asyncPublisher
	maxBatch int
	maxBytes int
	timeout  time.Duration
	observe  func(messages int) // envelope sizes, for metrics

	mu     sync.Mutex
	open   *envelope
	kick   chan struct{} // the open envelope got its first message
	slots  chan struct{} // in-flight envelopes
	acks   chan inFlight // published, awaiting the broker's ack, in order
	closed chan struct{}
	wg     sync.WaitGroup
}

type inFlight struct {
	env     *envelope
	pending broker.Pending
	sentAt  time.Time
}

func newPublisher(b asyncPublisher, maxBatch, maxBytes, inFlightMax int, timeout time.Duration, observe func(int)) *publisher {
	p := &publisher{
		broker: b, maxBatch: maxBatch, maxBytes: maxBytes, timeout: timeout, observe: observe,
		open: newEnvelope(), kick: make(chan struct{}, 1), slots: make(chan struct{}, inFlightMax),
		acks: make(chan inFlight, inFlightMax), closed: make(chan struct{}),
	}
	p.wg.Add(2)
	go p.publishLoop()
	go p.ackLoop()
	return p
}

// add appends one wire entry (EncodeWire) to the open envelope and returns
// the envelope, whose Wait is the message's ack. It waits while the open
// envelope is full and not yet taken.
func (p *publisher) add(ctx context.Context, wire []byte) (*envelope, error) {
	for {
		p.mu.Lock()
		env := p.open
		if env == nil {
			p.mu.Unlock()
			return nil, errPublisherClosed
		}
		if env.n == 0 || (env.n < p.maxBatch && len(env.data)+len(wire)+1 <= p.maxBytes) {
			env.data = AppendEnvelope(env.data, wire)
			env.n++
			first := env.n == 1
			p.mu.Unlock()
			if first {
				select {
				case p.kick <- struct{}{}:
				default:
				}
			}
			return env, nil
		}
		p.mu.Unlock()
		select {
		case <-env.taken:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-p.closed:
			return nil, errPublisherClosed
		}
	}
}

func (p *publisher) publishLoop() {
	defer p.wg.Done()
	defer close(p.acks)
	for {
		select {
		case <-p.kick:
		case <-p.closed:
			p.takeOpen(nil).finish(errPublisherClosed)
			return
		}
		select { // while every slot waits for an ack, the open envelope fills
		case p.slots <- struct{}{}:
		case <-p.closed:
			p.takeOpen(nil).finish(errPublisherClosed)
			return
		}
		// One kick per envelope, sent by its first message, and the open
		// envelope is taken only here, after its kick: it is never empty.
		env := p.takeOpen(newEnvelope())
		p.observe(env.n)
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		pending, err := p.broker.PublishAsync(ctx, Topic, env.data)
		cancel()
		if err != nil {
			env.finish(fmt.Errorf("broker unavailable: %w", err))
			<-p.slots
			continue
		}
		p.acks <- inFlight{env: env, pending: pending, sentAt: time.Now()}
	}
}

// takeOpen swaps the open envelope for next (nil once closing) and hands
// the taken one's waiting senders the new one.
func (p *publisher) takeOpen(next *envelope) *envelope {
	p.mu.Lock()
	env := p.open
	p.open = next
	p.mu.Unlock()
	close(env.taken)
	return env
}

// ackLoop waits for the envelopes' acks in publish order (the broker acks
// in that order too) and frees their slots.
func (p *publisher) ackLoop() {
	defer p.wg.Done()
	for f := range p.acks {
		ctx, cancel := context.WithDeadline(context.Background(), f.sentAt.Add(p.timeout))
		f.env.finish(f.pending.Wait(ctx))
		cancel()
		<-p.slots
	}
}

// close fails what has not been published and waits for the acks of what
// has (each bounded by the publish timeout).
func (p *publisher) close() {
	close(p.closed)
	p.wg.Wait()
}
