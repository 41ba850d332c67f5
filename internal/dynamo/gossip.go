package dynamo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// GossipConfig configures membership over hashicorp/memberlist (SWIM with
// the Lifeguard extensions, as in Consul and Serf).
type GossipConfig struct {
	Name     string
	Bind     string   // gossip host:port (UDP and TCP)
	HTTPAddr string   // this node's client HTTP host:port, shared in its metadata
	PeerAddr string   // this node's peer host:port (replica RPC), shared in its metadata
	Join     []string // gossip addresses of existing members
	Fast     bool     // probe every 200ms: tests and demos on one machine
	// SecretKey encrypts and authenticates every gossip message
	// (memberlist's keyring, AES-256-GCM): a process without it can
	// neither join nor be heard. Nil: plain gossip, loopback only.
	SecretKey []byte
	Logger    *slog.Logger
}

// Gossip is Membership over memberlist. Each node's metadata carries its
// HTTP address and, when it is leaving, a flag. memberlist reports a
// graceful leave and a death through the same callback; the node's state
// in it tells them apart when a member hears the leaving node's own
// farewell, and the flag, gossiped before the leave, does when the member
// instead finds the node gone by probing it. The flag also lets the others
// take the node off their rings while it hands its data off.
// memberlist keeps its suspicion state internal; a node shows a peer as
// suspect when its own requests to that peer are failing (see Node).
type Gossip struct {
	ml      *memberlist.Memberlist
	log     *slog.Logger
	mu      sync.Mutex
	members map[string]Member
	leaving map[string]bool
	meta    nodeMeta
}

type nodeMeta struct {
	HTTP    string `json:"http"`
	Peer    string `json:"peer"`
	Leaving bool   `json:"leaving,omitempty"`
}

// NewGossip starts gossiping and joins the given members (retrying in the
// background while none answers, so nodes may start in any order).
func NewGossip(cfg GossipConfig) (*Gossip, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, portStr, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("dynamo: --gossip %q: %w", cfg.Bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("dynamo: --gossip %q: bad port", cfg.Bind)
	}
	g := &Gossip{log: cfg.Logger, members: map[string]Member{}, leaving: map[string]bool{}, meta: nodeMeta{HTTP: cfg.HTTPAddr, Peer: cfg.PeerAddr}}
	c := memberlist.DefaultLANConfig()
	if cfg.Fast {
		c = memberlist.DefaultLocalConfig()
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.GossipInterval = 50 * time.Millisecond
		c.SuspicionMult = 2
		c.PushPullInterval = 2 * time.Second
	}
	c.Name = cfg.Name
	if cfg.SecretKey != nil {
		c.SecretKey = cfg.SecretKey
		c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	}
	c.BindAddr, c.BindPort = host, port
	c.AdvertiseAddr, c.AdvertisePort = host, port
	c.Events = g
	c.Delegate = g
	c.Logger = slog.NewLogLogger(cfg.Logger.With("component", "memberlist").Handler(), slog.LevelDebug)
	if g.ml, err = memberlist.Create(c); err != nil {
		return nil, fmt.Errorf("dynamo: gossip on %s: %w", cfg.Bind, err)
	}
	if len(cfg.Join) > 0 {
		if _, err := g.ml.Join(cfg.Join); err != nil {
			g.log.Warn("no member answered yet; retrying", "join", cfg.Join, "err", err)
			go g.retryJoin(cfg.Join)
		}
	}
	return g, nil
}

func (g *Gossip) retryJoin(seeds []string) {
	for i := 0; i < 600; i++ {
		time.Sleep(time.Second)
		if g.ml.NumMembers() > 1 {
			return
		}
		if _, err := g.ml.Join(seeds); err == nil {
			return
		}
	}
}

// NodeMeta implements memberlist.Delegate.
func (g *Gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, _ := json.Marshal(g.meta)
	return b
}

// NotifyMsg and GetBroadcasts: no application messages ride on gossip.
func (g *Gossip) NotifyMsg([]byte)                           {}
func (g *Gossip) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// maxLeftState bounds what a push/pull may carry of the leave verdicts:
// more names than any cluster here has members is not a member's state.
const maxLeftState = 1024

// LocalState implements memberlist.Delegate: the members this node saw
// leave, sent with every push/pull (memberlist's periodic full-state
// exchange over TCP).
//
// A member that missed both the leaving flag and the farewell (lost UDP
// gossip) finds the node gone by probing it and can only call that a
// death; memberlist ignores the "left" in later exchanges, since the node
// is already dead to it. The list carries the verdict to it, so every
// member converges on the leave and takes the node off its ring at once
// instead of after --dead-after.
func (g *Gossip) LocalState(join bool) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	var left []string
	for name, m := range g.members {
		if m.State == Left && len(left) < maxLeftState {
			left = append(left, name)
		}
	}
	b, _ := json.Marshal(left)
	return b
}

// MergeRemoteState implements memberlist.Delegate: a member this node
// holds dead, and the other side saw leave, left. Only a death becomes a
// leave: a member this node sees alive or leaving has been heard from
// here, and that is newer than anything a list of departures can say.
func (g *Gossip) MergeRemoteState(buf []byte, join bool) {
	var left []string
	if json.Unmarshal(buf, &left) != nil || len(left) > maxLeftState {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, name := range left {
		if m, ok := g.members[name]; ok && m.State == Dead {
			m.State, m.Since = Left, time.Now()
			g.members[name] = m
			g.log.Info("member", "name", name, "state", Left, "from", "push/pull")
		}
	}
}

func (g *Gossip) update(n *memberlist.Node, state MemberState) {
	var meta nodeMeta
	_ = json.Unmarshal(n.Meta, &meta)
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.members[n.Name].State
	if meta.Leaving {
		g.leaving[n.Name] = true
	}
	// The flag is sticky: gossip can still carry an older "alive" without
	// it after the node announced its leave. Only a node that has gone and
	// comes back alive starts a new life.
	if state == Alive && !meta.Leaving && (prev == Dead || prev == Left) {
		delete(g.leaving, n.Name)
	}
	if state == Alive && g.leaving[n.Name] {
		state = Leaving
	}
	if state == Dead && (g.leaving[n.Name] || n.State == memberlist.StateLeft) {
		state = Left
	}
	m := g.members[n.Name]
	if m.State != state {
		m.Since = time.Now()
		g.log.Info("member", "name", n.Name, "state", state)
	}
	m.Name, m.State = n.Name, state
	if meta.HTTP != "" {
		m.Addr = meta.HTTP
	}
	if meta.Peer != "" {
		m.PeerAddr = meta.Peer
	}
	g.members[n.Name] = m
}

// NotifyJoin implements memberlist.EventDelegate.
func (g *Gossip) NotifyJoin(n *memberlist.Node) { g.update(n, Alive) }

// NotifyUpdate implements memberlist.EventDelegate.
func (g *Gossip) NotifyUpdate(n *memberlist.Node) { g.update(n, Alive) }

// NotifyLeave implements memberlist.EventDelegate.
func (g *Gossip) NotifyLeave(n *memberlist.Node) { g.update(n, Dead) }

// Members implements Membership.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Member implements Membership.
func (g *Gossip) Member(name string) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	return m, ok
}

// Resolve returns a member's peer address (for the peer transports).
func (g *Gossip) Resolve(name string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	return m.PeerAddr, ok && m.PeerAddr != ""
}

// AnnounceLeave implements Membership: flag the departure in this node's
// metadata and give the flag time to spread.
func (g *Gossip) AnnounceLeave(ctx context.Context, _ string) error {
	g.mu.Lock()
	g.meta.Leaving = true
	g.mu.Unlock()
	if err := g.ml.UpdateNode(timeoutOf(ctx)); err != nil {
		return fmt.Errorf("dynamo: announcing leave: %w", err)
	}
	time.Sleep(min(timeoutOf(ctx), time.Second))
	return nil
}

// Leave implements Membership: the leaving flag is gossiped once more (a
// member that missed the first announcement must not take the departure
// for a death), then the leave itself.
func (g *Gossip) Leave(ctx context.Context) error {
	if err := g.ml.UpdateNode(timeoutOf(ctx)); err != nil {
		return fmt.Errorf("dynamo: announcing leave: %w", err)
	}
	return g.ml.Leave(timeoutOf(ctx))
}

func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d)/2, 100*time.Millisecond)
	}
	return 5 * time.Second
}

// Close implements Membership: stop gossiping (without leaving).
func (g *Gossip) Close() error { return g.ml.Shutdown() }
