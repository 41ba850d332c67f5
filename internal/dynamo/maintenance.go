package dynamo

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/merkle"
	"github.com/scalelab/scalelab/internal/dynamo/ring"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// The background work that undoes what failures did, in the order the
// Dynamo paper introduces it:
//
//   - hinted hand-off: writes held for a node that was down go to it once
//     it answers again (every HintInterval);
//   - anti-entropy: for every ring range this node replicates, it compares
//     Merkle trees with each other replica and exchanges only the keys of
//     the leaves that differ (every SyncInterval);
//   - range hand-off: keys this node holds for ranges it no longer
//     replicates (a node joined, or it is leaving) are pushed to the
//     range's replicas and deleted here only once every one acknowledged;
//   - tombstone reaping: a key whose versions are all tombstones older than
//     TombstoneGrace is deleted.

const handOffBatch = 512

type held struct {
	key      []byte
	versions []vclock.Version
}

// deliverHints hands off the writes this node holds for others.
func (n *Node) deliverHints(ctx context.Context) {
	targets, err := n.store.HintTargets()
	if err != nil {
		n.log.Error("listing hints", "err", err)
		return
	}
	r := n.Ring()
	for _, target := range targets {
		for ctx.Err() == nil {
			var batch []held
			_ = n.store.Hints(target, handOffBatch, func(key []byte, vs []vclock.Version) error {
				batch = append(batch, held{key, vs})
				return nil
			})
			if len(batch) == 0 {
				break
			}
			delivered := 0
			for _, h := range batch {
				var err error
				switch {
				case target == n.cfg.ID: // hinted for this node: it is its own replica now
					_, err = n.store.Put(h.key, "", h.versions...)
				case slices.Contains(r.Nodes(), target) && !n.leaving.Load():
					if !n.healthy(target) {
						err = fmt.Errorf("%s is down", target)
						break
					}
					_, err = n.call(ctx, target, replicaPut(h.key, "", h.versions))
				default: // the owner left the ring: its replicas are elsewhere now
					err = n.pushToReplicas(ctx, r, h.key, h.versions)
				}
				if err != nil {
					n.log.Debug("hinted hand-off", "target", target, "err", err)
					break
				}
				if ok, ferr := n.store.Forget(h.key, target, h.versions); ferr == nil && ok {
					delivered++
					n.metrics.hintsDelivered.Add(1)
				}
			}
			if delivered == 0 || len(batch) < handOffBatch {
				break
			}
		}
	}
}

// pushToReplicas writes versions to every placement of key (standing in
// for down nodes with hints) and fails unless all of them acknowledged.
func (n *Node) pushToReplicas(ctx context.Context, r *ring.Ring, key []byte, versions []vclock.Version) error {
	places := r.Placements(key, n.cfg.N, n.healthy)
	if len(places) == 0 {
		return fmt.Errorf("no replica for key")
	}
	for _, p := range places {
		if p.Node == n.cfg.ID {
			return fmt.Errorf("this node is still a placement") // keep it; nothing to hand off
		}
		if _, err := n.call(ctx, p.Node, replicaPut(key, p.HintFor, versions)); err != nil {
			return err
		}
	}
	return nil
}

// SyncOnce runs one pass of anti-entropy, range hand-off and tombstone
// reaping over the whole ring. It runs on a timer; tests call it to
// converge a healed cluster.
func (n *Node) SyncOnce(ctx context.Context) error {
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	r := n.Ring()
	var firstErr error
	for _, rg := range r.Ranges(n.cfg.N) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var err error
		if slices.Contains(rg.Nodes, n.cfg.ID) && !n.leaving.Load() {
			err = n.syncRange(ctx, rg)
		} else {
			err = n.handOffRange(ctx, r, rg)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if err := n.reap(n.reapCutoff()); err != nil && firstErr == nil {
		firstErr = err
	}
	return firstErr
}

// tree builds this node's Merkle tree of a range.
func (n *Node) tree(rg ring.Range, depth int) (*merkle.Tree, error) {
	b, err := merkle.NewBuilder(rg.Start, rg.End, depth)
	if err != nil {
		return nil, err
	}
	cutoff := n.reapCutoff()
	err = n.store.Scan(rg.Start, rg.End, func(key, raw []byte) error {
		if !expired(raw, cutoff) {
			b.Add(ring.KeyHash(key), key, raw)
		}
		return nil
	})
	return b.Tree(), err
}

// syncRange brings this node and every healthy peer replicating rg to the
// same versions: compare trees, pull the peer's keys of the differing
// leaves, then push back whatever the peer lacks.
func (n *Node) syncRange(ctx context.Context, rg ring.Range) error {
	depth := n.cfg.MerkleDepth
	local, err := n.tree(rg, depth)
	if err != nil {
		return err
	}
	for _, peer := range rg.Nodes {
		if peer == n.cfg.ID || !n.healthy(peer) {
			continue
		}
		if err := n.syncRangeWith(ctx, peer, rg, local); err != nil {
			n.log.Debug("anti-entropy", "peer", peer, "err", err)
			continue
		}
	}
	return nil
}

func (n *Node) syncRangeWith(ctx context.Context, peer string, rg ring.Range, local *merkle.Tree) error {
	depth := local.Depth()
	e := newRequest(opTree)
	e.uint(rg.Start)
	e.uint(rg.End)
	e.uint(uint64(depth))
	d, err := n.call(ctx, peer, e.b)
	if err != nil {
		return err
	}
	leaves := make([]uint64, 1<<depth)
	for i := range leaves {
		leaves[i] = d.uint()
	}
	if err := d.done(); err != nil {
		return err
	}
	remote, err := merkle.FromLeaves(rg.Start, rg.End, leaves)
	if err != nil {
		return err
	}
	diff, err := merkle.Diff(local, remote)
	if err != nil || len(diff) == 0 {
		return err
	}
	e = newRequest(opLeaves)
	e.uint(rg.Start)
	e.uint(rg.End)
	e.uint(uint64(depth))
	e.uint(uint64(len(diff)))
	for _, l := range diff {
		e.uint(uint64(l))
	}
	if d, err = n.call(ctx, peer, e.b); err != nil {
		return err
	}
	theirs := map[string][]byte{}
	cutoff := n.reapCutoff()
	count := d.uint()
	for i := uint64(0); i < count && d.err == nil; i++ {
		key := d.bytes(n.cfg.MaxKey)
		vs := d.versions()
		if d.err != nil {
			break
		}
		theirs[string(key)] = vclock.AppendVersions(nil, vs)
		if allExpired(vs, cutoff) {
			continue // about to be reaped there: do not resurrect it here
		}
		if _, err := n.store.Put(key, "", vs...); err != nil { // pull
			return err
		}
		n.metrics.aeKeys.Add(1)
	}
	if err := d.done(); err != nil {
		return err
	}
	// Push: every key of those leaves where this node now holds more.
	want := map[int]bool{}
	for _, l := range diff {
		want[l] = true
	}
	var push []held
	err = n.store.Scan(rg.Start, rg.End, func(key, raw []byte) error {
		if want[merkle.Leaf(rg.Start, rg.End, ring.KeyHash(key), depth)] && !bytes.Equal(raw, theirs[string(key)]) && !expired(raw, cutoff) {
			vs, err := vclock.UnmarshalVersions(raw)
			if err != nil {
				return err
			}
			push = append(push, held{append([]byte(nil), key...), vs})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, h := range push {
		if _, err := n.call(ctx, peer, replicaPut(h.key, "", h.versions)); err != nil {
			return err
		}
		n.metrics.aeKeys.Add(1)
	}
	return nil
}

// handOffRange moves the keys of a range this node no longer replicates
// to the range's replicas, deleting each here only after all of them (or
// their stand-ins, with hints) acknowledged and only if it did not change
// meanwhile.
func (n *Node) handOffRange(ctx context.Context, r *ring.Ring, rg ring.Range) error {
	for ctx.Err() == nil {
		var batch []held
		err := n.store.Scan(rg.Start, rg.End, func(key, raw []byte) error {
			if len(batch) == handOffBatch {
				return errStop
			}
			vs, err := vclock.UnmarshalVersions(raw)
			batch = append(batch, held{append([]byte(nil), key...), vs})
			return err
		})
		if err != nil && err != errStop {
			return err
		}
		moved := 0
		for _, h := range batch {
			if err := n.pushToReplicas(ctx, r, h.key, h.versions); err != nil {
				return nil // try again on the next pass
			}
			if ok, err := n.store.Forget(h.key, "", h.versions); err == nil && ok {
				moved++
				n.metrics.handedOff.Add(1)
			}
		}
		if moved == 0 || len(batch) < handOffBatch {
			return nil
		}
	}
	return ctx.Err()
}

var errStop = fmt.Errorf("stop")

// reap deletes keys whose every version is a tombstone written before
// cutoff. The grace period must outlast any replica's absence: a replica
// that never saw the delete would otherwise bring the value back through
// anti-entropy.
//
// Anti-entropy treats reapable keys as already gone (they are left out of
// Merkle trees and never shipped), so that replicas reaping at slightly
// different moments do not hand the tombstone back to each other.
func (n *Node) reap(cutoff time.Time) error {
	var dead []held
	err := n.store.Scan(0, 0, func(key, raw []byte) error {
		vs, err := vclock.UnmarshalVersions(raw)
		if err != nil || !allExpired(vs, cutoff) {
			return err
		}
		dead = append(dead, held{append([]byte(nil), key...), vs})
		return nil
	})
	if err != nil {
		return err
	}
	for _, h := range dead {
		if ok, err := n.store.Forget(h.key, "", h.versions); err == nil && ok {
			n.metrics.reaped.Add(1)
		}
	}
	return nil
}

// Leave announces the departure (the others take this node off their
// rings), hands everything it holds to the nodes that replicate it without
// it, then leaves. Writes that arrive meanwhile are handed off too; Leave
// gives up when ctx ends.
func (n *Node) Leave(ctx context.Context) error {
	n.leaving.Store(true)
	if err := n.members.AnnounceLeave(ctx, n.cfg.ID); err != nil {
		return err
	}
	for {
		n.deliverHints(ctx)
		if err := n.SyncOnce(ctx); err != nil && ctx.Err() != nil {
			return fmt.Errorf("dynamo: leave: data not fully handed off: %w", err)
		}
		empty := true
		_ = n.store.Scan(0, 0, func([]byte, []byte) error { empty = false; return errStop })
		targets, _ := n.store.HintTargets()
		if empty && len(targets) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dynamo: leave: data not fully handed off: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return n.members.Leave(ctx)
}

func (n *Node) reapCutoff() time.Time { return n.cfg.Now().Add(-n.cfg.TombstoneGrace) }

// allExpired reports whether every version is a tombstone made before cutoff.
func allExpired(vs []vclock.Version, cutoff time.Time) bool {
	for _, v := range vs {
		if !v.Tombstone || v.Dot.At >= cutoff.UnixMilli() {
			return false
		}
	}
	return len(vs) > 0
}

// expired is allExpired on a stored encoding.
func expired(raw []byte, cutoff time.Time) bool {
	vs, err := vclock.UnmarshalVersions(raw)
	return err == nil && allExpired(vs, cutoff)
}
