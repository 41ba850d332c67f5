package dynamo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/dynamo/ring"
	"github.com/scalelab/scalelab/internal/dynamo/store"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// Config is one node's settings. N and the vnode count must be the same on
// every node of a cluster; R and W are per-request defaults.
type Config struct {
	ID      string
	DataDir string
	Engine  store.Engine // bbolt or pebble
	Sync    store.SyncMode

	N, R, W int
	VNodes  int

	MaxKey   int // bytes; longer keys are refused with 400
	MaxValue int // bytes; larger values are refused with 400
	// MaxSiblings and MaxKeyBytes bound one key's versions (count, and
	// bytes of values together): a write past either is refused with 400
	// (Riak's max_siblings and max_object_size).
	MaxSiblings int
	MaxKeyBytes int

	RequestTimeout time.Duration // one replica request
	// SpeculativeRead is how long a read waits on the R replicas it asked
	// first before it asks the rest of the preference list too (0: ask all
	// N at once, as the Dynamo paper's coordinator does).
	SpeculativeRead time.Duration
	FailureBackoff  time.Duration // how long a peer that failed to answer is routed around
	HintInterval    time.Duration // hinted hand-off attempts
	SyncInterval    time.Duration // anti-entropy, range hand-off and tombstone reaping
	TombstoneGrace  time.Duration // a tombstone older than this is reaped
	DeadAfter       time.Duration // a dead node leaves the ring after this long
	MerkleDepth     int
	Prune           vclock.PruneLimits

	Logger   *slog.Logger
	Registry prometheus.Registerer // optional
	// Now is the node's clock (time.Now when nil): the failure detector's
	// backoff, the timestamps on versions, tombstone reaping and how long a
	// dead node stays on the ring all read it, so tests can drive them.
	Now func() time.Time
}

// DefaultConfig is N=3, R=W=2 with 64 virtual nodes per node.
func DefaultConfig() Config {
	return Config{
		Engine: store.EngineBolt, Sync: store.SyncAlways, N: 3, R: 2, W: 2, VNodes: 64,
		MaxKey: 1024, MaxValue: 1 << 20, MaxSiblings: 32, MaxKeyBytes: 8 << 20,
		RequestTimeout: 2 * time.Second, SpeculativeRead: 20 * time.Millisecond, FailureBackoff: time.Second,
		HintInterval: time.Second, SyncInterval: 10 * time.Second,
		TombstoneGrace: time.Hour, DeadAfter: 10 * time.Minute, MerkleDepth: 6,
		Prune: vclock.PruneLimits{MaxEntries: 50, MinAge: 24 * time.Hour},
	}
}

func (c *Config) validate() error {
	switch {
	case c.ID == "" || len(c.ID) > 64 || strings.ContainsAny(c.ID, "/ \t\n"):
		return fmt.Errorf("dynamo: node id %q: want 1–64 characters without spaces or slashes", c.ID)
	case c.Engine != store.EngineBolt && c.Engine != store.EnginePebble:
		return fmt.Errorf("dynamo: engine %q: want bbolt or pebble", c.Engine)
	case c.N < 1 || c.R < 1 || c.W < 1 || c.R > c.N || c.W > c.N:
		return fmt.Errorf("dynamo: N=%d R=%d W=%d: want 1 ≤ R, W ≤ N", c.N, c.R, c.W)
	case c.VNodes < 1 || c.VNodes > 4096:
		return fmt.Errorf("dynamo: %d virtual nodes: want 1–4096", c.VNodes)
	case c.MaxKey < 1 || c.MaxValue < 1:
		return fmt.Errorf("dynamo: key and value limits must be positive")
	case c.MaxSiblings < 1 || c.MaxKeyBytes < c.MaxValue:
		return fmt.Errorf("dynamo: max siblings %d, max key bytes %d: want ≥ 1 and ≥ the value limit %d", c.MaxSiblings, c.MaxKeyBytes, c.MaxValue)
	case c.MerkleDepth < 0 || c.MerkleDepth > 12:
		return fmt.Errorf("dynamo: merkle depth %d: want 0–12", c.MerkleDepth)
	case c.RequestTimeout <= 0 || c.HintInterval <= 0 || c.SyncInterval <= 0:
		return fmt.Errorf("dynamo: timeouts and intervals must be positive")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Node is one member of a Dynamo cluster: a replica of the key ranges the
// ring gives it, a coordinator for any request, and the background work
// that repairs what failures broke (hinted hand-off, anti-entropy, range
// hand-off, tombstone reaping).
type Node struct {
	cfg       Config
	store     *store.Store
	members   Membership
	transport Transport
	detector  *detector
	log       *slog.Logger
	metrics   *metrics

	ringMu  sync.Mutex
	ring    *ring.Ring
	ringKey string
	leaving atomic.Bool // set by Leave: the ring view drops this node

	syncMu sync.Mutex // one maintenance pass at a time
	pipe   pipeline   // batched replica writes, per peer

	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup
	bg     sync.WaitGroup // replica writes and read repairs that outlive their request
}

// Open opens the node's store under cfg.DataDir and starts its background
// work. The caller serves Handler() and closes the node.
func Open(cfg Config, members Membership, transport Transport) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("dynamo: data dir: %w", err)
	}
	// A store written by the other engine is not silently set aside for
	// an empty one: the node would serve as if it had lost its data.
	other := store.EngineBolt
	if cfg.Engine == store.EngineBolt {
		other = store.EnginePebble
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, other.FileName(cfg.ID))); err == nil {
		return nil, fmt.Errorf("dynamo: %s holds a %s store for %s; start the node with --engine %s, or on a fresh data directory", cfg.DataDir, other, cfg.ID, other)
	}
	st, err := store.Open(filepath.Join(cfg.DataDir, cfg.Engine.FileName(cfg.ID)), cfg.Engine, cfg.Sync)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, store: st, members: members, transport: transport,
		detector: newDetector(cfg.FailureBackoff, cfg.Now), log: cfg.Logger.With("node", cfg.ID), metrics: newMetrics(cfg.ID, cfg.Registry)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.loop(cfg.HintInterval, n.deliverHints)
	n.loop(cfg.SyncInterval, func(ctx context.Context) { _ = n.SyncOnce(ctx) })
	return n, nil
}

// ID is the node's name.
func (n *Node) ID() string { return n.cfg.ID }

// Config returns the node's settings.
func (n *Node) Config() Config { return n.cfg }

func (n *Node) loop(every time.Duration, fn func(context.Context)) {
	n.loops.Add(1)
	go func() {
		defer n.loops.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-t.C:
				fn(n.ctx)
			}
		}
	}()
}

// Close stops background work, waits for in-flight replica writes and
// closes the store. It does not leave the cluster (see Leave): a closed
// node is a crashed or restarting one as far as the others can tell.
func (n *Node) Close() error {
	n.cancel()
	n.loops.Wait()
	n.bg.Wait()
	return n.store.Close()
}

// Ring returns the node's current view of the ring: every member that has
// not left and has not been dead for longer than DeadAfter. Dead nodes stay
// on the ring for a while so that a crash and restart moves no data.
func (n *Node) Ring() *ring.Ring {
	var names []string
	now := n.cfg.Now()
	n.ringMu.Lock()
	defer n.ringMu.Unlock()
	for _, m := range n.members.Members() {
		switch {
		case m.Name == n.cfg.ID:
		case m.State == Left, m.State == Leaving:
		case m.State == Dead && n.cfg.DeadAfter > 0 && now.Sub(m.Since) > n.cfg.DeadAfter:
		default:
			names = append(names, m.Name)
		}
	}
	if !n.leaving.Load() {
		names = append(names, n.cfg.ID)
	}
	sort.Strings(names)
	key := strings.Join(names, "\x00")
	if n.ring != nil && key == n.ringKey {
		return n.ring
	}
	r, err := ring.New(names, n.cfg.VNodes)
	if err != nil { // unreachable: names are distinct and non-empty
		panic(err)
	}
	if n.ring != nil {
		n.log.Info("ring changed", "members", names)
	}
	n.ring, n.ringKey = r, key
	return r
}

// memberState is a member's state as this node sees it: gossip's verdict,
// downgraded to suspect when this node's own requests to it are failing.
func (n *Node) memberState(m Member) MemberState {
	if m.State == Alive && m.Name != n.cfg.ID && n.detector.isDown(m.Name) {
		return Suspect
	}
	return m.State
}

// healthy is whether requests should go to node now.
func (n *Node) healthy(node string) bool {
	if node == n.cfg.ID {
		return true
	}
	if n.detector.isDown(node) {
		return false
	}
	m, ok := n.members.Member(node)
	return ok && m.State == Alive
}

// call sends one request to node (or handles it here when node is this
// one), bounded by RequestTimeout, and feeds the failure detector.
func (n *Node) call(ctx context.Context, node string, req []byte) (*decoder, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var raw []byte
	if node == n.cfg.ID {
		raw = n.Handle(ctx, req)
	} else {
		var err error
		if raw, err = n.transport.Call(ctx, node, req); err != nil {
			n.detector.failed(node, errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil)
			return nil, err
		}
		n.detector.succeeded(node)
	}
	return parseResponse(raw)
}

// ClusterInfo is GET /cluster.
type ClusterInfo struct {
	Node    string       `json:"node"`
	N       int          `json:"n"`
	R       int          `json:"r"`
	W       int          `json:"w"`
	VNodes  int          `json:"vnodes"`
	Members []MemberInfo `json:"members"`
	Stats   Stats        `json:"stats"`
}

// MemberInfo is one member in GET /cluster.
type MemberInfo struct {
	Member
	OnRing bool    `json:"on_ring"`
	Share  float64 `json:"ring_share"`
}

// Cluster describes the cluster as this node sees it.
func (n *Node) Cluster() ClusterInfo {
	r := n.Ring()
	shares := r.Shares()
	info := ClusterInfo{Node: n.cfg.ID, N: n.cfg.N, R: n.cfg.R, W: n.cfg.W, VNodes: n.cfg.VNodes, Stats: n.metrics.snapshot()}
	onRing := map[string]bool{}
	for _, name := range r.Nodes() {
		onRing[name] = true
	}
	for _, m := range n.members.Members() {
		m.State = n.memberState(m)
		info.Members = append(info.Members, MemberInfo{Member: m, OnRing: onRing[m.Name], Share: shares[m.Name]})
	}
	return info
}
