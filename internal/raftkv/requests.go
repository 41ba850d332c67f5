package raftkv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

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

// readBarrier waits until this node has applied every write acknowledged
// before it was called. Concurrent callers share ReadIndex rounds, as
// etcd's linearizable read loop does: a caller joins the batch that the
// next round will serve (never one already under way, whose index may
// predate writes acknowledged before the caller began), so a burst of
// reads costs one heartbeat round rather than one each.
func (n *Node) readBarrier(ctx context.Context) error {
	if n.Leader() == 0 {
		return ErrNoLeader
	}
	ch := make(chan readResult, 1)
	n.readMu.Lock()
	n.readWaiting = append(n.readWaiting, ch)
	n.readMu.Unlock()
	select {
	case n.readNotify <- struct{}{}:
	default: // a round is already due
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		return n.waitApplied(ctx, r.index)
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return ErrStopped
	}
}

type readResult struct {
	index uint64
	err   error
}

// readRoundTimeout bounds one ReadIndex round: a leader that loses its
// quorum never answers, and the readers waiting on it must hear so.
func (n *Node) readRoundTimeout() time.Duration {
	return 2 * time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}

// readLoop runs one ReadIndex round at a time for every reader waiting
// when it starts.
func (n *Node) readLoop() {
	for {
		select {
		case <-n.readNotify:
		case <-n.stopped:
			n.readMu.Lock()
			batch := n.readWaiting
			n.readWaiting = nil
			n.readMu.Unlock()
			for _, ch := range batch {
				ch <- readResult{err: ErrStopped}
			}
			return
		}
		n.readMu.Lock()
		batch := n.readWaiting
		n.readWaiting = nil
		n.readMu.Unlock()
		if len(batch) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.readRoundTimeout())
		n.readRounds.Add(1)
		index, err := n.readIndex(ctx)
		cancel()
		for _, ch := range batch {
			ch <- readResult{index: index, err: err}
		}
	}
}

// readIndex runs one ReadIndex round: the leader's commit index, once a
// quorum has confirmed it still leads.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	if n.Leader() == 0 {
		return 0, ErrNoLeader
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
		return 0, err
	}
	select {
	case index := <-ch:
		return index, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("raftkv: read index: no answer from a quorum within %v: %w", n.readRoundTimeout(), ErrNoLeader)
		}
		return 0, ctx.Err()
	case <-n.stopped:
		return 0, ErrStopped
	}
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
