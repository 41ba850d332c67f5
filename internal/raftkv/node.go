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
	// SnapshotDuty is the share of the time a background snapshot may
	// work (serialising, writing); it pauses for the rest. 1 (or 0): no
	// pauses.
	SnapshotDuty float64
	MaxInflight  int // append messages in flight per follower (pipelining); 1 turns it off
	Logger       *slog.Logger
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
// entries, working a tenth of the time: a snapshot serialises and writes
// the whole store, so taken too often, or unpaced, it takes the cores and
// the disk from the Ready loop on big stores.
func DefaultConfig() Config {
	return Config{Sync: true, TickInterval: 100 * time.Millisecond, ElectionTicks: 10, SnapshotEvery: 100000, SnapshotDuty: 0.1, MaxInflight: 256}
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
	// Linearizable reads wait here for the next ReadIndex round, which
	// serves all of them (readLoop in requests.go).
	readMu      sync.Mutex
	readWaiting []chan readResult
	readNotify  chan struct{}
	readRounds  atomic.Uint64 // ReadIndex rounds run: fewer than reads under load
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
		kv: kv.New(), waiters: map[uint64]chan kv.Result{}, reads: map[uint64]chan uint64{}, readNotify: make(chan struct{}, 1),
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
	go n.readLoop()
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
