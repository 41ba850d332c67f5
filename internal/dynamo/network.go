package dynamo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/faultnet"
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
// no memory. The faults are internal/platform/faultnet's, whose doc says
// what a seed reproduces.
type Network struct {
	*faultnet.Faults[string] // Block, Partition, Isolate, SetDelay, Heal (crashed nodes stay down)
	mu                       sync.Mutex
	handlers                 map[string]func(context.Context, []byte) []byte
}

// NewNetwork returns a healthy network; seed drives loss and jitter.
func NewNetwork(seed uint64) *Network {
	return &Network{Faults: faultnet.New[string](seed), handlers: map[string]func(context.Context, []byte) []byte{}}
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
	d, ok := t.net.Decide(t.from, to)
	if err := t.wait(ctx, d, ok); err != nil {
		return nil, err
	}
	h := t.net.handler(to)
	if h == nil {
		return nil, fmt.Errorf("%w: %s is down", ErrUnreachable, to)
	}
	resp := h(ctx, append([]byte(nil), req...))
	d, ok = t.net.Decide(to, t.from)
	if err := t.wait(ctx, d, ok); err != nil {
		return nil, err
	}
	return append([]byte(nil), resp...), nil
}
