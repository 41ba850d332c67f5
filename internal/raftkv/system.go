package raftkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
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
func Factory() host.Factory {
	return host.Factory{
		Name: "raftkv", Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) {
			return NewLocalCluster(filepath.Join(d.Engines.Data, "raftkv"), 3, d)
		},
	}
}

// LocalCluster is an in-process cluster served as one system.
type LocalCluster struct {
	nodes []*Node
	apis  []http.Handler
	mux   *http.ServeMux
}

var _ host.System = (*LocalCluster)(nil)

// NewLocalCluster starts size nodes under dir (restarting them if dir holds logs).
func NewLocalCluster(dir string, size int, d *host.Deps) (*LocalCluster, error) {
	net := NewNetwork(1)
	c := &LocalCluster{mux: http.NewServeMux()}
	var ids []uint64
	for i := 1; i <= size; i++ {
		ids = append(ids, uint64(i))
	}
	for _, id := range ids {
		cfg := DefaultConfig()
		cfg.ID, cfg.Peers, cfg.DataDir, cfg.Logger = id, ids, filepath.Join(dir, fmt.Sprint(id)), d.Logger
		n, err := Start(cfg, net.Transport(id))
		if err != nil {
			_ = c.Close(context.Background())
			return nil, err
		}
		net.Attach(n)
		c.nodes = append(c.nodes, n)
		h := NewAPI(n, 3*time.Second, 1<<20).Handler()
		c.apis = append(c.apis, h)
		c.mux.Handle(fmt.Sprintf("/%d/", id), http.StripPrefix(fmt.Sprintf("/%d", id), httpx.JSONErrors(h)))
	}
	// Ready means a leader: wait for the first election (about a second).
	for deadline := time.Now().Add(5 * time.Second); c.nodes[0].Leader() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	c.mux.Handle("/v1/", httpx.RoundRobin(c.apis...))
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"system": "raftkv", "description": description, "nodes": ids,
			"endpoints": []string{"PUT v1/kv/{key} (?if_revision=)", "GET v1/kv/{key} (?stale=true)", "DELETE v1/kv/{key}",
				"GET v1/cluster", "{id}/v1/… (the same, through one node)"}})
	})
	return c, nil
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
		if c.nodes[0].Leader() == 0 {
			return fmt.Errorf("no leader elected")
		}
		return nil
	}}}
}

// Close implements host.System.
func (c *LocalCluster) Close(ctx context.Context) error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Stop())
	}
	return errors.Join(errs...)
}
