package dynamo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

const description = "Dynamo-style key-value store: a 3-node in-process cluster (N=3, R=2, W=2)"

// Factory is the dynamo system of `scalelab up`: three nodes in one
// process on an in-process network, each with its own store under
// DATA/dynamo. Routes, under /dynamo:
//
//	/kv/{key}           any node (round robin)
//	/{node}/kv/{key}    a given node: n1, n2 or n3
//	/{node}/cluster     that node's view of the cluster
func Factory() host.Factory {
	return host.Factory{
		Name:        "dynamo",
		Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) {
			return NewLocalCluster(filepath.Join(d.Engines.Data, "dynamo"), []string{"n1", "n2", "n3"}, d)
		},
	}
}

// LocalCluster is an in-process cluster served as one system. The
// console's fault buttons partition its network, heal it, and crash a node
// (cut it off the network, as the others see a crash) and bring it back.
type LocalCluster struct {
	nodes []*Node
	mux   *http.ServeMux
	net   *Network

	mu      sync.Mutex
	crashed map[string]bool
}

var _ host.System = (*LocalCluster)(nil)

// NewLocalCluster opens one node per name under dir.
func NewLocalCluster(dir string, names []string, d *host.Deps) (*LocalCluster, error) {
	net := NewNetwork(1)
	members := NewStatic(names...)
	c := &LocalCluster{mux: http.NewServeMux(), net: net, crashed: map[string]bool{}}
	for _, name := range names {
		cfg := DefaultConfig()
		cfg.ID, cfg.DataDir, cfg.Logger, cfg.Registry = name, filepath.Join(dir, name), d.Logger, d.Registry
		n, err := Open(cfg, members, net.Transport(name))
		if err != nil {
			_ = c.Close(context.Background())
			return nil, err
		}
		net.Attach(name, n.Handle)
		c.nodes = append(c.nodes, n)
		// JSONErrors inside StripPrefix: the node's own mux decides what
		// is unmatched, so its 404s are JSON like every other error.
		c.mux.Handle("/"+name+"/", http.StripPrefix("/"+name, httpx.JSONErrors(n.Handler())))
	}
	var handlers []http.Handler
	for _, n := range c.nodes {
		handlers = append(handlers, n.Handler())
	}
	c.mux.Handle("/kv/", httpx.RoundRobin(handlers...))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"system": "dynamo", "description": description, "nodes": names,
			"endpoints": []string{"PUT kv/{key} (X-Causal-Context, ?w=)", "GET kv/{key} (?r=)", "DELETE kv/{key}",
				"{node}/kv/{key} (the same, through one node)", "{node}/cluster"}})
	})
	return c, nil
}

// Name implements host.System.
func (c *LocalCluster) Name() string { return "dynamo" }

// Description implements host.System.
func (c *LocalCluster) Description() string { return description }

// Handler implements host.System.
func (c *LocalCluster) Handler() http.Handler { return c.mux }

// Checks implements host.System: every node answers a read of its ring.
func (c *LocalCluster) Checks() []httpx.Check {
	return []httpx.Check{{Name: "nodes", Fn: func(ctx context.Context) error {
		for _, n := range c.nodes {
			if len(n.Ring().Nodes()) != len(c.nodes) {
				return fmt.Errorf("%s sees %d nodes", n.ID(), len(n.Ring().Nodes()))
			}
		}
		return nil
	}}}
}

// Close implements host.System.
func (c *LocalCluster) Close(ctx context.Context) error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// NodeView is one node as the console shows it.
type NodeView struct {
	Name    string      `json:"name"`
	Up      bool        `json:"up"`
	Cluster ClusterInfo `json:"cluster"` // its own view: members, ring shares, counters
}

// Arc is a stretch of the ring, (Start, End], and its first owner.
type Arc struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	Owner string `json:"owner"`
}

// NodeSnapshot is one node's view of its cluster, as `dynamo node` shows
// it at /ui/.
type NodeSnapshot struct {
	Node NodeView
	Ring []Arc
}

// Snapshot is the node's own view and its ring.
func (n *Node) Snapshot() NodeSnapshot {
	s := NodeSnapshot{Node: NodeView{Name: n.ID(), Up: true, Cluster: n.Cluster()}}
	for _, r := range n.Ring().Ranges(1) {
		s.Ring = append(s.Ring, Arc{Start: r.Start, End: r.End, Owner: r.Nodes[0]})
	}
	return s
}

// State is every node's view and the ring as the first node sees it.
func (c *LocalCluster) State() (nodes []NodeView, ring []Arc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		nodes = append(nodes, NodeView{Name: n.ID(), Up: !c.crashed[n.ID()], Cluster: n.Cluster()})
	}
	for _, r := range c.nodes[0].Ring().Ranges(1) {
		ring = append(ring, Arc{Start: r.Start, End: r.End, Owner: r.Nodes[0]})
	}
	return nodes, ring
}

func (c *LocalCluster) node(name string) (*Node, error) {
	for _, n := range c.nodes {
		if n.ID() == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("dynamo: no node %q", name)
}

// Partition splits the network between the two sides, both ways.
func (c *LocalCluster) Partition(a, b []string) error {
	for _, name := range append(append([]string(nil), a...), b...) {
		if _, err := c.node(name); err != nil {
			return err
		}
	}
	c.net.Partition(a, b)
	return nil
}

// Heal removes every partition (crashed nodes stay down).
func (c *LocalCluster) Heal() { c.net.Heal() }

// Crash takes node name off the network: to every other node it is gone.
func (c *LocalCluster) Crash(name string) error {
	if _, err := c.node(name); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.net.Detach(name)
	c.crashed[name] = true
	return nil
}

// Recover puts a crashed node back on the network.
func (c *LocalCluster) Recover(name string) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.net.Attach(name, n.Handle)
	delete(c.crashed, name)
	return nil
}
