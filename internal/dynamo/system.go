package dynamo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"

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

// LocalCluster is an in-process cluster served as one system.
type LocalCluster struct {
	nodes []*Node
	mux   *http.ServeMux
}

var _ host.System = (*LocalCluster)(nil)

// NewLocalCluster opens one node per name under dir.
func NewLocalCluster(dir string, names []string, d *host.Deps) (*LocalCluster, error) {
	net := NewNetwork(1)
	members := NewStatic(names...)
	c := &LocalCluster{mux: http.NewServeMux()}
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
