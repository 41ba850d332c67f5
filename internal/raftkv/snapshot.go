package raftkv

import (
	"errors"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

func (n *Node) installSnapshot(s raftpb.Snapshot) error {
	if n.snapping { // one snapshot file at a time: finish ours first
		if err := n.snapshotDone(<-n.snapResult); err != nil {
			return err
		}
	}
	store, err := kv.Restore(s.Data)
	if err != nil {
		return err
	}
	if err := n.wal.SaveSnapshot(s, raftpb.HardState{}, nil); err != nil {
		return err
	}
	if err := n.storage.ApplySnapshot(s); err != nil {
		return err
	}
	n.mu.Lock()
	n.kv, n.confState, n.snapIndex = store, s.Metadata.ConfState, s.Metadata.Index
	n.applied.Broadcast()
	n.mu.Unlock()
	return nil
}

// maybeSnapshot starts a snapshot every SnapshotEvery applied entries (and
// after a membership change). The state is cloned here, at a known applied
// index (an O(1) copy-on-write clone of the B-tree); serialising it,
// handing it to Raft's storage and writing the file happen in the
// background, paced to SnapshotDuty of the time (pacer.go), and the log is
// compacted when the file is durable (snapshotDone).
func (n *Node) maybeSnapshot() error {
	if n.snapping {
		return nil
	}
	n.mu.Lock()
	applied := n.kv.Applied()
	due := n.cfg.SnapshotEvery > 0 && applied >= n.snapIndex+n.cfg.SnapshotEvery
	if !due && !n.confChanged || applied <= n.snapIndex {
		n.mu.Unlock()
		return nil
	}
	n.confChanged = false
	state, cs := n.kv.Clone(), n.confState
	n.mu.Unlock()
	n.snapping = true
	pace := newPacer(n.cfg.SnapshotDuty, n.stopped)
	began := time.Now()
	go func() {
		snap, err := n.storage.CreateSnapshot(applied, &cs, state.SnapshotPaced(pace.step))
		if err == nil {
			err = n.wal.WriteSnapshot(snap, pace.step)
		}
		n.snapResult <- snapResult{snap: snap, err: err, took: time.Since(began)}
	}()
	return nil
}

type snapResult struct {
	snap raftpb.Snapshot
	err  error
	took time.Duration
}

// snapshotDone compacts the log once a snapshot file is durable: a new
// segment holds the hard state and the entries after the snapshot, older
// segments go, and Raft's in-memory log keeps a tail for slow followers.
func (n *Node) snapshotDone(r snapResult) error {
	n.snapping = false
	if errors.Is(r.err, raft.ErrSnapOutOfDate) {
		return nil // a newer snapshot came from the leader meanwhile
	}
	if r.err != nil {
		return r.err
	}
	applied := r.snap.Metadata.Index
	last, _ := n.storage.LastIndex()
	var tail []raftpb.Entry
	if last > applied {
		var err error
		if tail, err = n.storage.Entries(applied+1, last+1, 1<<62); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	hs, _, _ := n.storage.InitialState()
	if err := n.wal.Compact(hs, tail); err != nil {
		return err
	}
	keep := n.cfg.SnapshotEvery / 10
	if applied > keep {
		if err := n.storage.Compact(applied - keep); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	n.mu.Lock()
	n.snapIndex = max(n.snapIndex, applied)
	n.mu.Unlock()
	n.log.Info("snapshot written, log compacted", "index", applied, "bytes", len(r.snap.Data), "took", r.took.Round(time.Millisecond))
	return nil
}
