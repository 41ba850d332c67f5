package raftkv

import (
	"context"
	"encoding/binary"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

// Propose replicates a write and returns its result once applied here.
// It must be called on (or forwarded to) any node; Raft forwards proposals
// from followers to the leader.
func (n *Node) Propose(ctx context.Context, cmd kv.Command) (kv.Result, error) {
	if n.Leader() == 0 {
		return kv.Result{}, ErrNoLeader
	}
	id := n.nextID.Add(1)
	ch := make(chan kv.Result, 1)
	n.mu.Lock()
	n.waiters[id] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, id)
		n.mu.Unlock()
	}()
	data := binary.BigEndian.AppendUint64(make([]byte, 0, 8+32+len(cmd.Key)+len(cmd.Value)), id)
	data = append(data, cmd.Encode()...)
	if err := n.rn.Propose(ctx, data); err != nil {
		return kv.Result{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return kv.Result{}, ctx.Err()
	case <-n.stopped:
		return kv.Result{}, ErrStopped
	}
}

// Read returns key's value. Linearizable reads go through ReadIndex: the
// leader confirms with a quorum that it is still the leader and returns
// its commit index; once this node has applied that far, its state
// includes every write acknowledged before the read began.
func (n *Node) Read(ctx context.Context, key []byte, linearizable bool) (value []byte, modRev, rev int64, ok bool, err error) {
	if linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return nil, 0, 0, false, err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v, mod, found := n.kv.Get(key)
	return append([]byte(nil), v...), mod, n.kv.Revision(), found, nil
}

func (n *Node) readBarrier(ctx context.Context) error {
	if n.Leader() == 0 {
		return ErrNoLeader
	}
	id := n.nextID.Add(1)
	ch := make(chan uint64, 1)
	n.mu.Lock()
	n.reads[id] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.reads, id)
		n.mu.Unlock()
	}()
	if err := n.rn.ReadIndex(ctx, binary.BigEndian.AppendUint64(nil, id)); err != nil {
		return err
	}
	var index uint64
	select {
	case index = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return ErrStopped
	}
	return n.waitApplied(ctx, index)
}

func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	stop := context.AfterFunc(ctx, func() {
		n.mu.Lock()
		n.applied.Broadcast()
		n.mu.Unlock()
	})
	defer stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	for n.kv.Applied() < index {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-n.stopped:
			return ErrStopped
		default:
		}
		n.applied.Wait()
	}
	return nil
}
