package raftkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

const description = "Raft key-value store: a 3-node in-process cluster (etcd raft, linearizable)"

// Factory is the raftkv system of `scalelab up`: three nodes in one process
// on an in-process network, each with its log under DATA/raftkv. Routes,
// under /raftkv:
//
//	/v1/kv/{key}, /v1/cluster          any node (round robin)
//	/{id}/v1/kv/{key}, /{id}/v1/cluster  node 1, 2 or 3
//
// With grpcAddr set, etcd's v3 KV API is served there too (etcdctl and
// clientv3), each request on a running node in turn; empty: not served.
func Factory(grpcAddr string) host.Factory {
	return host.Factory{
		Name: "raftkv", Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) {
			c, err := NewLocalCluster(filepath.Join(d.Engines.Data, "raftkv"), 3, d)
			if err != nil || grpcAddr == "" {
				return c, err
			}
			if err := c.ServeEtcd(grpcAddr); err != nil {
				_ = c.Close(context.Background())
				return nil, fmt.Errorf("%w (choose another address with --raftkv-etcd-addr, or \"\" for none)", err)
			}
			return c, nil
		},
	}
}

// ServeEtcd serves etcd's v3 KV API for the cluster on addr until Close.
func (c *LocalCluster) ServeEtcd(addr string) error {
	ctx, cancel := context.WithCancel(context.Background())
	limits := GRPCLimits{MaxConns: 1024, MaxStreams: 1024, MaxRequest: 2 << 20, IdleConnection: 5 * time.Minute}
	bound, done, err := ServeEtcdGRPC(ctx, addr, NewEtcdKVOver(c.pick, 3*time.Second, 1<<20), limits, c.d.Registry, 5*time.Second)
	if err != nil {
		cancel()
		return err
	}
	c.mu.Lock()
	c.etcdAddr, c.stopEtcd, c.etcdDone = bound.String(), cancel, done
	c.mu.Unlock()
	c.d.Logger.Info("raftkv: etcd v3 KV API (gRPC)", "addr", bound.String())
	return nil
}

// EtcdAddr is where etcd's API is served ("" when it is not).
func (c *LocalCluster) EtcdAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.etcdAddr
}

// pick gives the next running node that is not cut off, in turn.
func (c *LocalCluster) pick() (*Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range c.nodes {
		c.next = (c.next + 1) % len(c.nodes)
		if n := c.nodes[c.next]; n != nil && !c.isolated[c.ids[c.next]] {
			return n, nil
		}
	}
	return nil, ErrStopped
}

// LocalCluster is an in-process cluster served as one system. Its nodes
// can be stopped, restarted (from their logs), isolated and healed — the
// console's fault buttons — while the cluster serves.
type LocalCluster struct {
	dir string
	d   *host.Deps
	net *Network
	ids []uint64
	mux *http.ServeMux

	mu       sync.Mutex
	nodes    []*Node        // nil while stopped
	apis     []http.Handler // nil while stopped
	isolated map[uint64]bool
	next     int // the node pick gave last

	etcdAddr string             // etcd's API, when served
	stopEtcd context.CancelFunc // stops it
	etcdDone <-chan error       // closed when it has stopped
}

var _ host.System = (*LocalCluster)(nil)

// NewLocalCluster starts size nodes under dir (restarting them if dir holds logs).
func NewLocalCluster(dir string, size int, d *host.Deps) (*LocalCluster, error) {
	c := &LocalCluster{dir: dir, d: d, net: NewNetwork(1), mux: http.NewServeMux(), isolated: map[uint64]bool{}}
	for i := 1; i <= size; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	c.nodes, c.apis = make([]*Node, size), make([]http.Handler, size)
	var all []http.Handler
	for i, id := range c.ids {
		if err := c.start(i); err != nil {
			_ = c.Close(context.Background())
			return nil, err
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(i, w, r) })
		all = append(all, h)
		c.mux.Handle(fmt.Sprintf("/%d/", id), http.StripPrefix(fmt.Sprintf("/%d", id), httpx.JSONErrors(h)))
	}
	// Ready means a leader: wait for the first election (about a second).
	for deadline := time.Now().Add(5 * time.Second); c.leader() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	c.mux.Handle("/v1/", httpx.RoundRobin(all...))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"system": "raftkv", "description": description, "nodes": c.ids,
			"etcd_api": c.EtcdAddr(), // "" when not served
			"endpoints": []string{"PUT v1/kv/{key} (?if_revision=)", "GET v1/kv/{key} (?stale=true)", "DELETE v1/kv/{key}",
				"GET v1/cluster", "{id}/v1/… (the same, through one node)"}})
	})
	return c, nil
}

// start starts node slot i from its log.
func (c *LocalCluster) start(i int) error {
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.DataDir, cfg.Logger = c.ids[i], c.ids, filepath.Join(c.dir, fmt.Sprint(c.ids[i])), c.d.Logger
	n, err := Start(cfg, c.net.Transport(cfg.ID))
	if err != nil {
		return err
	}
	c.net.Attach(n)
	c.mu.Lock()
	c.nodes[i], c.apis[i] = n, NewAPI(n, 3*time.Second, 1<<20).Handler()
	c.mu.Unlock()
	return nil
}

func (c *LocalCluster) serve(i int, w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	h := c.apis[i]
	c.mu.Unlock()
	if h == nil {
		w.Header().Set("Retry-After", "1")
		httpx.WriteJSON(w, http.StatusServiceUnavailable, httpx.ErrorBody{Error: fmt.Sprintf("node %d is stopped", c.ids[i])})
		return
	}
	h.ServeHTTP(w, r)
}

func (c *LocalCluster) leader() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n != nil {
			if l := n.Leader(); l != 0 {
				return l
			}
		}
	}
	return 0
}

func (c *LocalCluster) slot(id uint64) (int, error) {
	for i, v := range c.ids {
		if v == id {
			return i, nil
		}
	}
	return 0, fmt.Errorf("raftkv: no node %d", id)
}

// NodeState is one node as the console shows it.
type NodeState struct {
	ID       uint64 `json:"id"`
	Running  bool   `json:"running"`
	Isolated bool   `json:"isolated"`
	Role     string `json:"role"` // leader, follower, candidate, pre-candidate; "" while stopped
	Leader   uint64 `json:"leader"`
	Term     uint64 `json:"term"`
	Commit   uint64 `json:"commit"`
	Applied  uint64 `json:"applied"`
}

// State is every node's Raft state now.
func (c *LocalCluster) State() []NodeState {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NodeState, len(c.ids))
	for i, id := range c.ids {
		out[i] = NodeState{ID: id, Isolated: c.isolated[id]}
		if n := c.nodes[i]; n != nil {
			out[i] = n.View()
			out[i].Isolated = c.isolated[id]
		}
	}
	return out
}

// View is the node's own state as the console shows it.
func (n *Node) View() NodeState {
	st := n.Status()
	return NodeState{ID: st.ID, Running: true, Role: strings.TrimPrefix(strings.ToLower(st.RaftState.String()), "state"),
		Leader: st.Lead, Term: st.Term, Commit: st.Commit, Applied: st.Applied}
}

// StopNode stops node id (its log stays): a crash, as far as the others know.
func (c *LocalCluster) StopNode(id uint64) error {
	i, err := c.slot(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i], c.apis[i] = nil, nil
	c.mu.Unlock()
	if n == nil {
		return fmt.Errorf("raftkv: node %d is already stopped", id)
	}
	c.net.Detach(id)
	return n.Stop()
}

// RestartNode starts a stopped node again from its log.
func (c *LocalCluster) RestartNode(id uint64) error {
	i, err := c.slot(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running := c.nodes[i] != nil
	c.mu.Unlock()
	if running {
		return fmt.Errorf("raftkv: node %d is running", id)
	}
	return c.start(i)
}

// IsolateNode cuts node id off from the others, both ways.
func (c *LocalCluster) IsolateNode(id uint64) error {
	if _, err := c.slot(id); err != nil {
		return err
	}
	c.net.Isolate(id, c.ids)
	c.mu.Lock()
	c.isolated[id] = true
	c.mu.Unlock()
	return nil
}

// Partition splits the network between the two sides, both ways.
func (c *LocalCluster) Partition(a, b []uint64) error {
	for _, id := range append(append([]uint64(nil), a...), b...) {
		if _, err := c.slot(id); err != nil {
			return err
		}
	}
	c.net.Partition(a, b)
	return nil
}

// SlowNode delays every message to or from node id by d (0: no longer).
func (c *LocalCluster) SlowNode(id uint64, d time.Duration) error {
	if _, err := c.slot(id); err != nil {
		return err
	}
	c.net.Slow(id, d)
	return nil
}

// Heal lifts every isolation.
func (c *LocalCluster) Heal() {
	c.net.Heal()
	c.mu.Lock()
	c.isolated = map[uint64]bool{}
	c.mu.Unlock()
}

// Name implements host.System.
func (c *LocalCluster) Name() string { return "raftkv" }

// Description implements host.System.
func (c *LocalCluster) Description() string { return description }

// Handler implements host.System.
func (c *LocalCluster) Handler() http.Handler { return c.mux }

// Checks implements host.System: the cluster has a leader.
func (c *LocalCluster) Checks() []httpx.Check {
	return []httpx.Check{{Name: "leader", Fn: func(ctx context.Context) error {
		if c.leader() == 0 {
			return fmt.Errorf("no leader elected")
		}
		return nil
	}}}
}

// Close implements host.System.
func (c *LocalCluster) Close(ctx context.Context) error {
	c.mu.Lock()
	nodes := append([]*Node(nil), c.nodes...)
	stopEtcd, etcdDone := c.stopEtcd, c.etcdDone
	c.mu.Unlock()
	var errs []error
	if stopEtcd != nil {
		stopEtcd()
		errs = append(errs, <-etcdDone)
	}
	for _, n := range nodes {
		if n != nil {
			errs = append(errs, n.Stop())
		}
	}
	return errors.Join(errs...)
}
