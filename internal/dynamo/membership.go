package dynamo

import (
	"context"
	"sort"
	"sync"
	"time"
)

// MemberState is what the cluster believes about a node.
type MemberState string

// The states of a member, as in SWIM: a suspect is still in service but
// has missed probes; a dead node keeps its place on the ring (its writes go
// to stand-ins with hints) until it has been dead for Config.DeadAfter; a
// node that left gracefully is off the ring at once.
const (
	Alive   MemberState = "alive"
	Suspect MemberState = "suspect"
	Dead    MemberState = "dead"
	Leaving MemberState = "leaving" // handing its data off: off the ring, still answering
	Left    MemberState = "left"
)

// Member is one node as membership sees it.
type Member struct {
	Name     string      `json:"name"`
	Addr     string      `json:"addr,omitempty"`      // client HTTP host:port
	PeerAddr string      `json:"peer_addr,omitempty"` // peer host:port, for the HTTP transport
	State    MemberState `json:"state"`
	Since    time.Time   `json:"since"` // when it entered State
}

// Membership tells a node who is in the cluster. Gossip (memberlist)
// implements it between processes, Static in one process.
type Membership interface {
	Members() []Member
	// Member looks one node up (on every request's path: no copying).
	Member(name string) (Member, bool)
	// AnnounceLeave tells the others that node is leaving, so that they
	// take it off their rings (and stop sending it data) while it hands
	// its data off.
	AnnounceLeave(ctx context.Context, node string) error
	// Leave completes a graceful departure.
	Leave(ctx context.Context) error
	Close() error
}

// Static is a membership set by hand: every node starts alive and tests
// (or `scalelab up`) change states explicitly. Failures are then seen only
// by each node's own failure detector, as in the Dynamo paper's local
// failure detection.
type Static struct {
	mu      sync.Mutex
	members map[string]Member
}

// NewStatic returns a membership of the named nodes, all alive.
func NewStatic(names ...string) *Static {
	s := &Static{members: map[string]Member{}}
	for _, n := range names {
		s.Set(n, Alive)
	}
	return s
}

// Set puts node in state (adding it when new).
func (s *Static) Set(node string, state MemberState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.members[node]; ok && m.State == state {
		return
	}
	s.members[node] = Member{Name: node, State: state, Since: time.Now()}
}

// Member implements Membership.
func (s *Static) Member(name string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[name]
	return m, ok
}

// Members implements Membership.
func (s *Static) Members() []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Member, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AnnounceLeave implements Membership.
func (s *Static) AnnounceLeave(_ context.Context, node string) error {
	s.Set(node, Leaving)
	return nil
}

// Leave implements Membership: the owner of a static cluster marks the
// node Left (or restarts it).
func (s *Static) Leave(context.Context) error { return nil }

// Close implements Membership.
func (s *Static) Close() error { return nil }

// detector is a node's own failure detector: a peer that failed to answer
// is treated as down for a while, then tried again (the next request is
// the probe). Each consecutive failure doubles the wait, up to 8× the
// base, so a long partition costs a timed-out probe only now and then.
// It is what makes a coordinator route around a slow or partitioned peer
// before gossip has an opinion.
type detector struct {
	mu      sync.Mutex
	now     func() time.Time
	backoff time.Duration
	down    map[string]time.Time // until when
	strikes map[string]int       // consecutive failures
}

func newDetector(backoff time.Duration, now func() time.Time) *detector {
	return &detector{now: now, backoff: backoff, down: map[string]time.Time{}, strikes: map[string]int{}}
}

// failed records a failed request to node. A definite failure (refused,
// reset, an error answer) routes around it at once; a slow one (no answer
// in time) only from the second in a row: one slow answer under load is
// not a dead node.
func (d *detector) failed(node string, slow bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := min(d.strikes[node], 3)
	d.strikes[node]++
	if slow && d.strikes[node] < 2 {
		return
	}
	d.down[node] = d.now().Add(d.backoff << s)
}

func (d *detector) succeeded(node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.down, node)
	delete(d.strikes, node)
}

func (d *detector) isDown(node string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.down[node]
	if ok && d.now().After(until) {
		delete(d.down, node)
		return false
	}
	return ok
}

// forgive forgets every failure: the next request to each peer probes it.
func (d *detector) forgive() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = map[string]time.Time{}
	d.strikes = map[string]int{}
}
