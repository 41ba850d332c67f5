package raftkv

import (
	"context"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/faultnet"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Network is an in-process Transport for clusters in one process (tests,
// `scalelab up`) that can drop messages between two nodes (one way or
// both), delay them with jitter — which also reorders them — and lose a
// fraction at random (internal/platform/faultnet's faults, whose doc says
// what a seed reproduces). Raft tolerates all of it; linearizability must
// hold throughout.
type Network struct {
	*faultnet.Faults[uint64] // Block, Partition, Isolate, SetDelay, Heal
	mu                       sync.Mutex
	nodes                    map[uint64]*Node
}

// NewNetwork returns a healthy network; seed drives loss and jitter.
func NewNetwork(seed uint64) *Network {
	return &Network{Faults: faultnet.New[uint64](seed), nodes: map[uint64]*Node{}}
}

// Attach makes a node reachable; Detach cuts it off (a crash).
func (n *Network) Attach(node *Node) { n.mu.Lock(); n.nodes[node.ID()] = node; n.mu.Unlock() }

// Detach removes a node.
func (n *Network) Detach(id uint64) { n.mu.Lock(); delete(n.nodes, id); n.mu.Unlock() }

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
		t.net.mu.Unlock()
		d, delivered := t.net.Decide(t.from, m.To)
		if to == nil || !delivered {
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
