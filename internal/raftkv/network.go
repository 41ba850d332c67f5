package raftkv

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Network is an in-process Transport for clusters in one process (tests,
// `scalelab up`) that can drop messages between two nodes (one way or
// both), delay them with jitter — which also reorders them — and lose a
// fraction at random. Raft tolerates all of it; linearizability must hold
// throughout. Randomness comes from one seeded source.
type Network struct {
	mu      sync.Mutex
	nodes   map[uint64]*Node
	blocked map[[2]uint64]bool
	delay   time.Duration
	jitter  time.Duration
	loss    float64
	rng     *rand.Rand
}

// NewNetwork returns a healthy network.
func NewNetwork(seed uint64) *Network {
	return &Network{nodes: map[uint64]*Node{}, blocked: map[[2]uint64]bool{}, rng: rand.New(rand.NewPCG(seed, seed+1))}
}

// Attach makes a node reachable; Detach cuts it off (a crash).
func (n *Network) Attach(node *Node) { n.mu.Lock(); n.nodes[node.ID()] = node; n.mu.Unlock() }

// Detach removes a node.
func (n *Network) Detach(id uint64) { n.mu.Lock(); delete(n.nodes, id); n.mu.Unlock() }

// Block drops every message from → to.
func (n *Network) Block(from, to uint64) {
	n.mu.Lock()
	n.blocked[[2]uint64{from, to}] = true
	n.mu.Unlock()
}

// Isolate cuts a node off from every other, both ways.
func (n *Network) Isolate(id uint64, all []uint64) {
	for _, o := range all {
		if o != id {
			n.Block(id, o)
			n.Block(o, id)
		}
	}
}

// SetDelay delays each message by d plus up to jitter and loses a fraction.
func (n *Network) SetDelay(d, jitter time.Duration, loss float64) {
	n.mu.Lock()
	n.delay, n.jitter, n.loss = d, jitter, loss
	n.mu.Unlock()
}

// Heal lifts every block, delay and loss.
func (n *Network) Heal() {
	n.mu.Lock()
	n.blocked = map[[2]uint64]bool{}
	n.delay, n.jitter, n.loss = 0, 0, 0
	n.mu.Unlock()
}

// Transport returns from's sending side.
func (n *Network) Transport(from uint64) Transport { return netTransport{n, from} }

type netTransport struct {
	net  *Network
	from uint64
}

func (t netTransport) Send(msgs []raftpb.Message) {
	for _, m := range msgs {
		t.net.mu.Lock()
		to, from := t.net.nodes[m.To], t.net.nodes[t.from]
		lost := t.net.blocked[[2]uint64{t.from, m.To}] || t.net.loss > 0 && t.net.rng.Float64() < t.net.loss
		d := t.net.delay
		if t.net.jitter > 0 {
			d += time.Duration(t.net.rng.Int64N(int64(t.net.jitter)))
		}
		t.net.mu.Unlock()
		if to == nil || lost {
			if m.Type == raftpb.MsgSnap && from != nil {
				from.rn.ReportSnapshot(m.To, raft.SnapshotFailure) // else Raft waits for it forever
			}
			continue
		}
		b, err := m.Marshal() // a copy, as on the wire
		if err != nil {
			continue
		}
		go func() {
			if d > 0 {
				time.Sleep(d)
			}
			var c raftpb.Message
			if c.Unmarshal(b) == nil {
				err := to.Step(context.Background(), c)
				if c.Type == raftpb.MsgSnap && from != nil {
					status := raft.SnapshotFinish
					if err != nil {
						status = raft.SnapshotFailure
					}
					from.rn.ReportSnapshot(c.To, status)
				}
			}
		}()
	}
}
