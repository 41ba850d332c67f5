package dynamo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Network is an in-process Transport for a cluster in one process — the
// 3-node cluster of `scalelab up`, the fault tests and the CAP experiment.
// It can inject the faults a real network has: messages from one node to
// another dropped (a one-way partition; two make a symmetric one), delayed,
// or lost at random, and nodes that are down (crashed). A request and its
// response are separate messages: with a→b blocked, b's call to a reaches
// a, a acts on it, and the answer is lost — as on a real network.
//
// Every message is a copy of bytes, exactly as on the wire, so nodes share
// no memory. Randomness comes from one seeded source, so a fault schedule
// replays the same way.
type Network struct {
	mu       sync.Mutex
	handlers map[string]func(context.Context, []byte) []byte
	blocked  map[[2]string]bool
	delay    time.Duration
	jitter   time.Duration
	loss     float64
	rng      *rand.Rand
}

// NewNetwork returns a healthy network; seed drives loss and jitter.
func NewNetwork(seed uint64) *Network {
	return &Network{handlers: map[string]func(context.Context, []byte) []byte{}, blocked: map[[2]string]bool{},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Attach makes node reachable; Detach makes it unreachable (a crash).
func (n *Network) Attach(node string, handle func(context.Context, []byte) []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[node] = handle
}

// Detach removes node.
func (n *Network) Detach(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.handlers, node)
}

// Block drops every message from → to (one way).
func (n *Network) Block(from, to string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[[2]string{from, to}] = true
}

// Partition blocks all messages between the two sides, both ways.
func (n *Network) Partition(a, b []string) {
	for _, x := range a {
		for _, y := range b {
			n.Block(x, y)
			n.Block(y, x)
		}
	}
}

// SetDelay delays every message by d plus up to jitter, and loses each
// with probability loss.
func (n *Network) SetDelay(d, jitter time.Duration, loss float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay, n.jitter, n.loss = d, jitter, loss
}

// Heal removes every partition, delay and loss (crashed nodes stay down).
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked = map[[2]string]bool{}
	n.delay, n.jitter, n.loss = 0, 0, 0
}

// deliver decides one message's fate: its delay, or false when it is lost.
func (n *Network) deliver(from, to string) (time.Duration, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blocked[[2]string{from, to}] || n.loss > 0 && n.rng.Float64() < n.loss {
		return 0, false
	}
	d := n.delay
	if n.jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.jitter)))
	}
	return d, true
}

func (n *Network) handler(node string) func(context.Context, []byte) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.handlers[node]
}

// Transport returns from's view of the network.
func (n *Network) Transport(from string) Transport { return &netTransport{net: n, from: from} }

type netTransport struct {
	net  *Network
	from string
}

func (t *netTransport) wait(ctx context.Context, d time.Duration, ok bool) error {
	if !ok {
		<-ctx.Done() // a lost message looks like silence until the timeout
		return fmt.Errorf("%w: message lost (%v)", ErrUnreachable, ctx.Err())
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrUnreachable, ctx.Err())
		}
	}
	return nil
}

// Call implements Transport.
func (t *netTransport) Call(ctx context.Context, to string, req []byte) ([]byte, error) {
	d, ok := t.net.deliver(t.from, to)
	if err := t.wait(ctx, d, ok); err != nil {
		return nil, err
	}
	h := t.net.handler(to)
	if h == nil {
		return nil, fmt.Errorf("%w: %s is down", ErrUnreachable, to)
	}
	resp := h(ctx, append([]byte(nil), req...))
	d, ok = t.net.deliver(to, t.from)
	if err := t.wait(ctx, d, ok); err != nil {
		return nil, err
	}
	return append([]byte(nil), resp...), nil
}
