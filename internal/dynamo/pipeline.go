package dynamo

import (
	"context"
	"fmt"
	"sync"
)

// Replica writes to one peer are pipelined: a write that finds others
// already queued for the same peer travels with them in one message
// (opReplicaPutMany), which the peer applies in one transaction — one HTTP
// exchange and one fsync for the lot. There is no timer: under light load
// every write goes alone at once; under heavy load batches grow by
// themselves while up to maxSenders messages per peer are in flight
// (group commit, as in a database log).
const (
	maxBatch   = 256
	batchBytes = 8 << 20 // a batch closes here, far under the peer body limit
	maxSenders = 4
)

type queued struct {
	key      []byte
	hintFor  string
	versions []byte // encoded version set
	done     chan error
}

type peerQueue struct {
	mu      sync.Mutex
	items   []*queued
	senders int
}

type pipeline struct {
	mu    sync.Mutex
	peers map[string]*peerQueue
}

func (p *pipeline) queue(node string) *peerQueue {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.peers == nil {
		p.peers = map[string]*peerQueue{}
	}
	q := p.peers[node]
	if q == nil {
		q = &peerQueue{}
		p.peers[node] = q
	}
	return q
}

// replicate sends one replica write to node through its pipeline and
// waits for the answer (or ctx).
func (n *Node) replicate(ctx context.Context, node string, key []byte, hintFor string, encoded []byte) error {
	if node == n.cfg.ID {
		d, err := n.call(ctx, node, replicaPutEncoded(key, hintFor, encoded))
		if err == nil {
			err = d.done()
		}
		return err
	}
	q := n.pipe.queue(node)
	item := &queued{key: key, hintFor: hintFor, versions: encoded, done: make(chan error, 1)}
	q.mu.Lock()
	q.items = append(q.items, item)
	start := q.senders < maxSenders
	if start {
		q.senders++
	}
	q.mu.Unlock()
	if start {
		n.bg.Add(1)
		go n.drain(node, q)
	}
	select {
	case err := <-item.done:
		return err
	case <-ctx.Done():
		n.detector.failed(node, true) // no answer in time, whatever the batch does later
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, node, ctx.Err())
	}
}

// drain sends node's queued writes until the queue is empty.
func (n *Node) drain(node string, q *peerQueue) {
	defer n.bg.Done()
	for {
		q.mu.Lock()
		k, size := 0, 0
		for k < len(q.items) && k < maxBatch && (k == 0 || size+len(q.items[k].versions) <= batchBytes) {
			size += len(q.items[k].versions)
			k++
		}
		if k == 0 {
			q.senders--
			q.mu.Unlock()
			return
		}
		batch := append([]*queued(nil), q.items[:k]...)
		q.items = q.items[k:]
		q.mu.Unlock()
		var msg []byte
		if len(batch) == 1 {
			msg = replicaPutEncoded(batch[0].key, batch[0].hintFor, batch[0].versions)
		} else {
			e := newRequest(opReplicaPutMany)
			e.uint(uint64(len(batch)))
			for _, it := range batch {
				e.bytes(it.key)
				e.str(it.hintFor)
				e.b = append(e.b, it.versions...)
			}
			msg = e.b
		}
		d, err := n.call(n.ctx, node, msg)
		if err == nil {
			err = d.done()
		}
		for _, it := range batch {
			it.done <- err
		}
	}
}
