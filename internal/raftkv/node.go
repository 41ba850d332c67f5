package raftkv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
	"github.com/scalelab/scalelab/internal/raftkv/wal"
)

// Config is one node's settings.
type Config struct {
	ID            uint64
	Peers         []uint64 // the initial members, when bootstrapping a new cluster
	Join          bool     // joining a running cluster: start with no members, learn them from the leader
	DataDir       string
	Sync          bool          // fsync the log before acknowledging (off only in tests)
	TickInterval  time.Duration // one Raft tick (heartbeat = 1 tick, election = ElectionTicks)
	ElectionTicks int
	SnapshotEvery uint64 // applied entries between snapshots
	MaxInflight   int    // append messages in flight per follower (pipelining); 1 turns it off
	Logger        *slog.Logger
	// OnConfChange, if set, is told of every applied membership change
	// (the transport adds or drops the peer; context carries its address).
	OnConfChange func(t raftpb.ConfChangeType, id uint64, context []byte)
	// KnownPeer, if set, admits messages from members this node knows of
	// outside its applied membership (the address book of a joining node).
	KnownPeer func(id uint64) bool
	// Reachable, if set, is the transport's own word on whether a peer
	// answers; ActiveVoters requires it as well as Raft's RecentActive.
	Reachable func(id uint64) bool
}

// DefaultConfig: 100 ms ticks, elections after 1 s, snapshots every 100,000
// entries (etcd's default): a snapshot serialises the whole store inside the
// Ready loop, so taking one too often stalls the cluster on big stores.
func DefaultConfig() Config {
	return Config{Sync: true, TickInterval: 100 * time.Millisecond, ElectionTicks: 10, SnapshotEvery: 100000, MaxInflight: 256}
}

// Transport delivers Raft messages to peers, asynchronously and without
// guarantees (Raft retries): dropping a message is always allowed.
type Transport interface {
	Send(msgs []raftpb.Message)
}

// Node is one replica: etcd's raft state machine, driven by the Ready loop
// here, with the WAL for durability and the kv state machine.
type Node struct {
	cfg       Config
	log       *slog.Logger
	rn        raft.Node
	storage   *raft.MemoryStorage
	wal       *wal.WAL
	transport Transport

	mu        sync.Mutex
	kv        *kv.Store
	confState raftpb.ConfState
	snapIndex uint64
	// confChanged forces a snapshot after a membership change: a node that
	// joins can only install a snapshot whose membership includes it.
	confChanged bool
	waiters     map[uint64]chan kv.Result // proposal ID → its result, on the proposing node
	reads       map[uint64]chan uint64    // ReadIndex request ID → the read index
	applied     *sync.Cond

	snapping   bool // a snapshot file is being written (Ready loop only)
	snapResult chan snapResult

	nextID  atomic.Uint64
	stopped chan struct{}
	done    chan struct{}
	leader  atomic.Uint64

	// The guard's view of the persisted state (see guard.go).
	term, commit atomic.Uint64
	dropped      *prometheus.CounterVec
	droppedTotal atomic.Uint64
	lastDrop     atomic.Value // string: why the last refused message was refused
	guardView    raftView     // the guard's lookups (see view)
}

// ErrStopped is returned by requests to a stopped node.
var ErrStopped = errors.New("raftkv: node stopped")

// ErrNoLeader is returned while this node knows of no leader (an election
// is under way, or it is cut off from a quorum): Raft would drop the
// request, so it is refused at once and the caller retries.
var ErrNoLeader = errors.New("raftkv: no leader")

// Start opens the node's log (recovering after a restart) and starts its
// Ready loop.
func Start(cfg Config, transport Transport) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ID == 0 {
		return nil, fmt.Errorf("raftkv: node ID must be positive")
	}
	restart := wal.Exists(cfg.DataDir)
	w, st, err := wal.Open(cfg.DataDir, cfg.Sync)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), storage: raft.NewMemoryStorage(), wal: w, transport: transport,
		kv: kv.New(), waiters: map[uint64]chan kv.Result{}, reads: map[uint64]chan uint64{},
		stopped: make(chan struct{}), done: make(chan struct{}), snapResult: make(chan snapResult, 1)}
	n.applied = sync.NewCond(&n.mu)
	n.guardView = raftView{
		self: cfg.ID,
		termAt: func(i uint64) (uint64, bool) {
			t, err := n.storage.Term(i)
			return t, err == nil
		},
		member:   n.isMember,
		raftTerm: func() uint64 { return n.rn.Status().Term },
	}
	n.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scalelab_raftkv_peer_messages_dropped_total",
		Help: "Raft messages from peers refused by the guard before reaching Raft, by message type.",
	}, []string{"type"})
	n.nextID.Store(uint64(time.Now().UnixNano()))
	if !raft.IsEmptySnap(st.Snapshot) {
		if err := n.storage.ApplySnapshot(st.Snapshot); err != nil {
			return nil, err
		}
		if n.kv, err = kv.Restore(st.Snapshot.Data); err != nil {
			return nil, err
		}
		n.confState, n.snapIndex = st.Snapshot.Metadata.ConfState, st.Snapshot.Metadata.Index
	}
	if err := n.storage.SetHardState(st.HardState); err != nil {
		return nil, err
	}
	n.term.Store(st.HardState.Term)
	n.commit.Store(max(st.HardState.Commit, n.snapIndex))
	if err := n.storage.Append(st.Entries); err != nil {
		return nil, err
	}
	rc := &raft.Config{
		ID: cfg.ID, ElectionTick: cfg.ElectionTicks, HeartbeatTick: 1, Storage: n.storage,
		Applied:       n.kv.Applied(),
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: max(cfg.MaxInflight, 1), MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum: true, PreVote: true, StepDownOnRemoval: true, Logger: raftLogger{n.log},
	}
	switch {
	case restart || cfg.Join:
		n.rn = raft.RestartNode(rc)
	default:
		peers := make([]raft.Peer, len(cfg.Peers))
		for i, id := range cfg.Peers {
			peers[i] = raft.Peer{ID: id}
		}
		n.rn = raft.StartNode(rc, peers)
	}
	go n.run()
	return n, nil
}

// Step hands a message from a peer to Raft, once the guard has passed it
// (guard.go). A refused message is dropped and counted, and the error
// says why; the caller goes on with the next one.
func (n *Node) Step(ctx context.Context, m raftpb.Message) error {
	if err := checkMessage(&m, n.view()); err != nil {
		n.dropped.WithLabelValues(m.Type.String()).Inc()
		n.lastDrop.Store(err.Error())
		if n.droppedTotal.Add(1)%1000 == 1 { // the first, then every thousandth
			n.log.Warn("peer message dropped", "err", err, "from", m.From, "dropped", n.droppedTotal.Load())
		}
		return err
	}
	return n.rn.Step(ctx, m)
}

// Dropped is how many peer messages the guard refused, and why the last was.
func (n *Node) Dropped() (count uint64, last string) {
	last, _ = n.lastDrop.Load().(string)
	return n.droppedTotal.Load(), last
}

// Collector exposes the guard's counters to Prometheus.
func (n *Node) Collector() prometheus.Collector { return n.dropped }

// view is the guard's view now: the lookups are set once (Start), the
// values read per message, so a peer message costs no allocation here.
func (n *Node) view() raftView {
	v := n.guardView
	v.term, v.commit = n.term.Load(), n.commit.Load()
	v.lastIndex, _ = n.storage.LastIndex()
	return v
}

func (n *Node) isMember(id uint64) bool {
	if n.cfg.KnownPeer != nil && n.cfg.KnownPeer(id) {
		return true
	}
	for _, p := range n.cfg.Peers {
		if p == id {
			return true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ids := range [][]uint64{n.confState.Voters, n.confState.Learners, n.confState.VotersOutgoing} {
		for _, v := range ids {
			if v == id {
				return true
			}
		}
	}
	return false
}

// ID is the node's ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Leader is the current leader as this node knows it (0: none).
func (n *Node) Leader() uint64 { return n.leader.Load() }

// Status is Raft's view: term, commit, progress of followers (on the leader).
func (n *Node) Status() raft.Status { return n.rn.Status() }

// Stop stops the Ready loop and closes the log (a crash, or a shutdown).
func (n *Node) Stop() error {
	select {
	case <-n.stopped:
		return nil
	default:
	}
	close(n.stopped)
	<-n.done
	if n.snapping {
		<-n.snapResult // the file write must not outlive the log it belongs to
	}
	n.rn.Stop()
	n.mu.Lock()
	n.applied.Broadcast()
	n.mu.Unlock()
	return n.wal.Close()
}

func (n *Node) run() {
	defer close(n.done)
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-n.stopped:
			return
		case <-ticker.C:
			n.rn.Tick()
		case r := <-n.snapResult:
			if err := n.snapshotDone(r); err != nil {
				n.log.Error("ready loop stopped: snapshot", "err", err)
				return
			}
		case rd := <-n.rn.Ready():
			if err := n.handle(rd); err != nil {
				// A node that cannot persist must not go on: it would
				// acknowledge what it has not stored.
				n.log.Error("ready loop stopped", "err", err)
				return
			}
			n.rn.Advance()
		}
	}
}

// handle is one turn of the Ready contract: persist, send, apply.
func (n *Node) handle(rd raft.Ready) error {
	if rd.SoftState != nil {
		n.leader.Store(rd.SoftState.Lead)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := n.wal.Save(rd.HardState, rd.Entries); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		_ = n.storage.SetHardState(rd.HardState)
	}
	if err := n.storage.Append(rd.Entries); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		n.term.Store(rd.HardState.Term)
		n.commit.Store(rd.HardState.Commit)
	}
	n.transport.Send(rd.Messages)
	for _, rs := range rd.ReadStates {
		id := binary.BigEndian.Uint64(rs.RequestCtx)
		n.mu.Lock()
		if ch, ok := n.reads[id]; ok {
			ch <- rs.Index
			delete(n.reads, id)
		}
		n.mu.Unlock()
	}
	for _, e := range rd.CommittedEntries {
		n.apply(e)
	}
	return n.maybeSnapshot()
}

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

func (n *Node) apply(e raftpb.Entry) {
	switch e.Type {
	case raftpb.EntryNormal:
		if len(e.Data) < 8 {
			n.mu.Lock()
			n.kv.Skip(e.Index) // a leader's empty entry
			n.applied.Broadcast()
			n.mu.Unlock()
			return
		}
		id := binary.BigEndian.Uint64(e.Data[:8])
		cmd, err := kv.Decode(e.Data[8:])
		n.mu.Lock()
		var r kv.Result
		if err == nil {
			r = n.kv.Apply(e.Index, cmd)
		} else {
			n.kv.Skip(e.Index) // not a command (cannot happen: proposals are encoded here)
		}
		if ch, ok := n.waiters[id]; ok {
			ch <- r
			delete(n.waiters, id)
		}
		n.applied.Broadcast()
		n.mu.Unlock()
	case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeI
		if err := checkEntry(&e); err != nil {
			// Committed everywhere alike, so every node skips it alike.
			n.log.Error("membership change skipped", "index", e.Index, "err", err)
			n.mu.Lock()
			n.kv.Skip(e.Index)
			n.applied.Broadcast()
			n.mu.Unlock()
			return
		}
		if e.Type == raftpb.EntryConfChange {
			var c raftpb.ConfChange
			_ = c.Unmarshal(e.Data)
			cc = c
		} else {
			var c raftpb.ConfChangeV2
			_ = c.Unmarshal(e.Data)
			cc = c
		}
		cs := n.rn.ApplyConfChange(cc)
		if n.cfg.OnConfChange != nil {
			for _, c := range cc.AsV2().Changes {
				n.cfg.OnConfChange(c.Type, c.NodeID, cc.AsV2().Context)
			}
		}
		n.mu.Lock()
		n.confState = *cs
		n.confChanged = true
		n.kv.Skip(e.Index)
		n.applied.Broadcast()
		n.mu.Unlock()
	}
}

// ActiveVoters is, on the leader, the voters it has heard from within the
// last election timeout (itself included); ok is false elsewhere.
func (n *Node) ActiveVoters() (active map[uint64]bool, ok bool) {
	st := n.rn.Status()
	if st.RaftState != raft.StateLeader {
		return nil, false
	}
	active = map[uint64]bool{n.cfg.ID: true}
	for id, p := range st.Progress {
		if p.RecentActive && (n.cfg.Reachable == nil || n.cfg.Reachable(id)) {
			active[id] = true
		}
	}
	return active, true
}

// Members returns the current voters.
func (n *Node) Members() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]uint64(nil), n.confState.Voters...)
}

// ChangeMembership adds (with the peer address in context) or removes a
// voter, one at a time as Raft's single-server changes require, and waits
// until the change is applied here.
func (n *Node) ChangeMembership(ctx context.Context, add bool, id uint64, peerAddr string) error {
	if n.Leader() == 0 {
		return ErrNoLeader
	}
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id, Context: []byte(peerAddr)}
	if !add {
		cc.Type = raftpb.ConfChangeRemoveNode
	}
	if err := n.rn.ProposeConfChange(ctx, cc); err != nil {
		return err
	}
	for {
		present := false
		for _, v := range n.Members() {
			present = present || v == id
		}
		if present == add {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopped:
			return ErrStopped
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// maybeSnapshot starts a snapshot every SnapshotEvery applied entries (and
// after a membership change). The state is cloned here, at a known applied
// index (a copy of the maps, values shared); serialising it, handing it to
// Raft's storage and writing the file happen in the background, and the
// log is compacted when the file is durable (snapshotDone).
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
	go func() {
		snap, err := n.storage.CreateSnapshot(applied, &cs, state.Snapshot())
		if err == nil {
			err = n.wal.WriteSnapshot(snap)
		}
		n.snapResult <- snapResult{snap: snap, err: err}
	}()
	return nil
}

type snapResult struct {
	snap raftpb.Snapshot
	err  error
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
	return nil
}

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

// raftLogger routes etcd raft's logger to slog (warnings and up).
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                   {}
func (r raftLogger) Debugf(format string, v ...any)   {}
func (r raftLogger) Info(v ...any)                    {}
func (r raftLogger) Infof(format string, v ...any)    {}
func (r raftLogger) Warning(v ...any)                 { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) { r.l.Warn(fmt.Sprintf(format, v...)) }
func (r raftLogger) Error(v ...any)                   { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any)   { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                   { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any)   { r.Fatal(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                   { r.Fatal(v...) }
func (r raftLogger) Panicf(format string, v ...any)   { r.Fatal(fmt.Sprintf(format, v...)) }
