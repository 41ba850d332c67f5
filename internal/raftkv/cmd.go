package raftkv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.etcd.io/raft/v3"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Command is `scalelab raftkv`.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "raftkv",
		Short: "A Raft-replicated, linearizable key-value store (etcd raft)",
	}
	root.AddCommand(nodeCommand())
	return root
}

type usageErr struct{ error }

func (usageErr) UsageError() bool { return true }

// ParsePeers reads "1=host:port,2=host:port".
func ParsePeers(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || n == 0 || addr == "" {
			return nil, fmt.Errorf("--peers %q: want ID=HOST:PORT,… with IDs ≥ 1", s)
		}
		if _, dup := out[n]; dup {
			return nil, fmt.Errorf("--peers: ID %d listed twice", n)
		}
		out[n] = addr
	}
	return out, nil
}

func nodeCommand() *cobra.Command {
	cfg := DefaultConfig()
	var addr, peerAddr, peers string
	var timeout time.Duration
	var maxValue int
	var debug bool
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one node: client API on --addr, Raft traffic on --peer-addr",
		Example: `  scalelab raftkv node --id 1 --addr 127.0.0.1:7301 --peer-addr 127.0.0.1:7401 \
      --peers 1=127.0.0.1:7401,2=127.0.0.1:7402,3=127.0.0.1:7403 --data /tmp/r1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pm, err := ParsePeers(peers)
			if err != nil {
				return usageErr{err}
			}
			if _, ok := pm[cfg.ID]; !ok {
				return usageErr{fmt.Errorf("--peers does not list this node's --id %d", cfg.ID)}
			}
			cfg.Peers = cfg.Peers[:0]
			for id := range pm {
				cfg.Peers = append(cfg.Peers, id)
			}
			cfg.Logger = host.Logger(cmd.ErrOrStderr(), debug)
			return RunNode(cmd.Context(), cfg, addr, peerAddr, pm, timeout, maxValue)
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.ID, "id", 0, "node ID, ≥ 1 (required)")
	f.StringVar(&addr, "addr", "127.0.0.1:7301", "client HTTP address")
	f.StringVar(&peerAddr, "peer-addr", "127.0.0.1:7401", "Raft peer address")
	f.StringVar(&peers, "peers", "", "initial members: ID=PEER-ADDR,… (this node included)")
	f.StringVar(&cfg.DataDir, "data", "./data/raftkv", "directory of the log and snapshots")
	f.BoolVar(&cfg.Sync, "fsync", true, "fsync the log before acknowledging")
	f.DurationVar(&cfg.TickInterval, "tick", cfg.TickInterval, "Raft tick (heartbeat); elections after 10 ticks")
	f.Uint64Var(&cfg.SnapshotEvery, "snapshot-every", cfg.SnapshotEvery, "applied entries between snapshots")
	f.DurationVar(&timeout, "request-timeout", 3*time.Second, "how long a request waits for a quorum before 503")
	f.IntVar(&maxValue, "max-value", 1<<20, "largest value in bytes")
	f.BoolVar(&debug, "debug", false, "log every request")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("peers")
	return cmd
}

// RunNode runs a node until ctx ends; a leader hands leadership to the
// most up-to-date follower before it stops.
func RunNode(ctx context.Context, cfg Config, addr, peerAddr string, peers map[uint64]string, timeout time.Duration, maxValue int) error {
	logger := cfg.Logger
	tr := NewHTTPTransport(cfg.ID, peers)
	node, err := Start(cfg, tr)
	if err != nil {
		tr.Close()
		return err
	}
	tr.Bind(node)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api := NewAPI(node, timeout, maxValue)
	app := httpx.Instrument("raftkv", httpx.NewMetrics(reg), int64(maxValue)+1<<20, logger, api.Handler())
	client := httpx.NewServer(httpx.ServerConfig{Addr: addr}, httpx.Ops(httpx.JSONErrors(app), reg, nil), logger)
	peer := httpx.NewServer(httpx.ServerConfig{Addr: peerAddr, WriteTimeout: time.Minute, ReadTimeout: time.Minute}, PeerHandler(node), logger)
	if err := errors.Join(client.Listen(), peer.Listen()); err != nil {
		client.Close()
		peer.Close()
		_ = node.Stop()
		tr.Close()
		return err
	}
	logger.Info("raftkv node up", "id", cfg.ID, "addr", client.Addr(), "peer_addr", peer.Addr(), "peers", peers, "fsync", cfg.Sync)
	serveCtx, stopServing := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { errs <- client.Serve(serveCtx) }()
	go func() { errs <- peer.Serve(serveCtx) }()
	select {
	case <-ctx.Done():
	case err := <-errs:
		logger.Error("server stopped", "err", err)
	}
	transferLeadership(node, logger)
	stopServing()
	e1, e2 := <-errs, <-errs
	err = errors.Join(e1, e2, node.Stop())
	tr.Close()
	return err
}

func transferLeadership(n *Node, logger *slog.Logger) {
	st := n.Status()
	if st.RaftState != raft.StateLeader {
		return
	}
	var best, match uint64
	for id, p := range st.Progress {
		if id != n.ID() && p.Match >= match {
			best, match = id, p.Match
		}
	}
	if best == 0 {
		return
	}
	logger.Info("handing leadership over before stopping", "to", best)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n.rn.TransferLeadership(ctx, n.ID(), best)
	for ctx.Err() == nil && n.Leader() == n.ID() {
		time.Sleep(20 * time.Millisecond)
	}
}
