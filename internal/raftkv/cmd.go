package raftkv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.etcd.io/raft/v3"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/raftkv/wal"
)

// Command is `scalelab raftkv`.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "raftkv",
		Short: "A Raft-replicated, linearizable key-value store (etcd raft)",
	}
	root.AddCommand(nodeCommand(), memberCommand())
	return root
}

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
	var peers, join, keyFile, adminToken, pprofAddr, transport string
	opts := NodeOptions{}
	var debug bool
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one node: client API on --addr (and etcd's on --grpc-addr), Raft traffic on --peer-addr",
		Example: `  scalelab raftkv node --id 1 --addr 127.0.0.1:7301 --peer-addr 127.0.0.1:7401 --grpc-addr 127.0.0.1:7501 \
      --peers 1=127.0.0.1:7401,2=127.0.0.1:7402,3=127.0.0.1:7403 --data /tmp/r1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Logger = host.Logger(cmd.ErrOrStderr(), debug)
			if pprofAddr != "" {
				go host.ServePprof(cmd.Context(), pprofAddr, cfg.Logger)
			}
			var err error
			if opts.ClusterKey, err = auth.LoadKey(keyFile); err != nil {
				return apperr.Usage(err)
			}
			var where string
			if opts.Admin, where, err = auth.LoadAdminToken(adminToken, cfg.DataDir); err != nil {
				return apperr.Usage(err)
			}
			cfg.Logger.Info("admin operations need the admin token", "from", where)
			pm := map[uint64]string{}
			switch {
			case peers != "" && join != "":
				return apperr.Usagef("--peers bootstraps a new cluster, --join enters a running one: give one")
			case peers != "":
				var err error
				if pm, err = ParsePeers(peers); err != nil {
					return apperr.Usage(err)
				}
				if _, ok := pm[cfg.ID]; !ok {
					return apperr.Usagef("--peers does not list this node's --id %d", cfg.ID)
				}
				for id := range pm {
					cfg.Peers = append(cfg.Peers, id)
				}
			case join != "":
				members, err := joinCluster(cmd.Context(), join, cfg.ID, opts.PeerAddr, opts.Admin)
				if err != nil {
					return err
				}
				for _, m := range members {
					pm[m.ID] = m.PeerAddr
				}
				cfg.Join = true
			case !wal.Exists(cfg.DataDir):
				return apperr.Usagef("a new node needs --peers (bootstrap) or --join URL")
			}
			opts.Peers = pm
			switch transport {
			case "link":
			case "http":
				opts.PeerPOST = true
			default:
				return apperr.Usagef("--peer-transport %q: want link or http", transport)
			}
			return RunNode(cmd.Context(), cfg, opts)
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&cfg.ID, "id", 0, "node ID, ≥ 1 (required)")
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:7301", "client HTTP address")
	f.StringVar(&opts.GRPCAddr, "grpc-addr", "", "serve etcd's v3 KV API (gRPC: Range, Put, DeleteRange, Txn) here, for etcdctl and clientv3 programs (empty: off)")
	f.StringVar(&opts.PeerAddr, "peer-addr", "127.0.0.1:7401", "Raft peer address (mutual TLS with --cluster-key; loopback only without)")
	f.StringVar(&keyFile, "cluster-key", os.Getenv("SCALELAB_CLUSTER_KEY"), "file holding the cluster key, the same on every member ($SCALELAB_CLUSTER_KEY; make one with `scalelab cluster-key`)")
	f.StringVar(&transport, "peer-transport", "link", "how this node sends Raft messages: link (one framed connection per peer) or http (one POST per batch); a node receives both")
	f.StringVar(&adminToken, "admin-token", os.Getenv("SCALELAB_ADMIN_TOKEN"), "token of admin operations (membership) ($SCALELAB_ADMIN_TOKEN; default: DATA/admin-token, made at first start)")
	f.Int64Var(&opts.MaxPeerMessage, "max-peer-message", 16<<20, "largest batch of Raft messages a peer may send, in bytes (senders close batches at 4 MiB)")
	f.Int64Var(&opts.MaxSnapshot, "max-snapshot", 1<<30, "largest snapshot a peer may send, in bytes (the whole store; two at a time)")
	f.StringVar(&peers, "peers", "", "bootstrap a new cluster with these members: ID=PEER-ADDR,… (this node included)")
	f.StringVar(&join, "join", "", "enter a running cluster through any member's client URL (http://host:port)")
	f.StringVar(&cfg.DataDir, "data", "./data/raftkv", "directory of the log and snapshots")
	f.BoolVar(&cfg.Sync, "fsync", true, "fsync the log before acknowledging")
	f.DurationVar(&cfg.TickInterval, "tick", cfg.TickInterval, "Raft tick (heartbeat); elections after 10 ticks")
	f.Uint64Var(&cfg.SnapshotEvery, "snapshot-every", cfg.SnapshotEvery, "applied entries between snapshots")
	f.Float64Var(&cfg.SnapshotDuty, "snapshot-duty", cfg.SnapshotDuty, "share of the time a background snapshot works, pausing for the rest (1: unpaced)")
	f.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "append messages in flight per follower (1: no pipelining)")
	f.DurationVar(&opts.RequestTimeout, "request-timeout", 3*time.Second, "how long a request waits for a quorum before 503")
	f.IntVar(&opts.MaxValue, "max-value", 1<<20, "largest value in bytes")
	f.BoolVar(&debug, "debug", false, "log every request")
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve /debug/pprof on this separate address, e.g. 127.0.0.1:6060")
	f.BoolVar(&opts.Faults, "fault-injection", false, "serve PUT /debug/cut on the peer address (partitions for `experiment run linearizability`); never in production")
	_ = f.MarkHidden("fault-injection")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

// NodeOptions are a process's settings around its Node.
type NodeOptions struct {
	Addr, PeerAddr string
	GRPCAddr       string            // etcd's KV API; empty: not served
	Peers          map[uint64]string // bootstrap members, or the members a join answered
	RequestTimeout time.Duration
	MaxValue       int
	MaxPeerMessage int64            // one batch of Raft messages
	MaxSnapshot    int64            // one snapshot message
	Faults         bool             // serve PUT /debug/cut on the peer port
	PeerPOST       bool             // send batches by POST instead of over links
	ClusterKey     *auth.Key        // nil: loopback demo mode
	Admin          *auth.AdminToken // guards membership changes
}

// RunNode runs a node until ctx ends; a leader hands leadership to the
// most up-to-date follower before it stops.
func RunNode(ctx context.Context, cfg Config, o NodeOptions) error {
	logger := cfg.Logger
	peersA, err := auth.NewPeers(o.ClusterKey, fmt.Sprintf("raftkv-%d", cfg.ID))
	if err != nil {
		return err
	}
	if err := peersA.CheckAddr(o.PeerAddr); err != nil {
		return apperr.Usage(err)
	}
	if o.Admin == nil {
		return fmt.Errorf("raftkv: a node needs an admin token")
	}
	book, err := LoadAddressBook(cfg.DataDir, o.Peers)
	if err != nil {
		return err
	}
	tr := NewPeerTransport(cfg.ID, book.Addrs(), peersA, !o.PeerPOST)
	if o.Faults {
		tr.Cut = &Cut{}
	}
	book.tr = tr
	cfg.OnConfChange = book.OnConfChange
	cfg.KnownPeer = book.Has
	window := 2 * time.Duration(cfg.ElectionTicks) * cfg.TickInterval
	cfg.Reachable = func(id uint64) bool { return tr.Reachable(id, window) }
	node, err := Start(cfg, tr)
	if err != nil {
		tr.Close()
		return err
	}
	tr.Bind(node)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), node.Collector())
	active := func(ctx context.Context) (map[uint64]bool, error) {
		if a, ok := node.ActiveVoters(); ok {
			return a, nil
		}
		lead := node.Leader()
		if lead == 0 {
			return nil, ErrNoLeader
		}
		return tr.ActiveVoters(ctx, lead, book.Addrs()[lead])
	}
	api := NewAPI(node, o.RequestTimeout, o.MaxValue).WithMembership(book, o.Admin, active)
	metrics := httpx.NewMetrics(reg)
	app := httpx.Instrument("raftkv", metrics, int64(o.MaxValue)+1<<20, logger, api.Handler())
	ui := host.NodeConsole{System: "raftkv", Description: fmt.Sprintf("Raft node %d: its own view of the cluster", cfg.ID),
		View: func() any { return node.View() }, Metrics: metrics, Gather: reg, Admin: o.Admin, DataDir: cfg.DataDir}
	client := httpx.NewServer(httpx.ServerConfig{Addr: o.Addr}, host.WithNodeUI(ctx, httpx.Ops(httpx.JSONErrors(app), reg, nil), ui), logger)
	// Snapshots have their own route and limit: a store's whole state,
	// one or two at a time; everything else is small batches.
	links := NewLinkServer(node, tr.Cut, int(o.MaxPeerMessage), logger)
	inner := PeerHandler(node, tr.Cut, links)
	peerHandler := http.NewServeMux()
	peerHandler.Handle("POST /raft/snapshot", peersA.Guard(inner, auth.Limits{MaxBody: o.MaxSnapshot, MaxConcurrent: 2}, reg))
	peerHandler.Handle("/", peersA.Guard(inner, auth.Limits{MaxBody: o.MaxPeerMessage, MaxConcurrent: 32}, reg))
	peer := httpx.NewServer(httpx.ServerConfig{Addr: o.PeerAddr, WriteTimeout: time.Minute, ReadTimeout: time.Minute, TLS: peersA.ServerTLS()}, peerHandler, logger)
	if err := errors.Join(client.Listen(), peer.Listen()); err != nil {
		client.Close()
		peer.Close()
		links.Close()
		_ = node.Stop()
		tr.Close()
		return err
	}
	serveCtx, stopServing := context.WithCancel(context.Background())
	grpcDone := make(chan error, 1)
	grpcAddr := "off"
	if o.GRPCAddr == "" {
		grpcDone <- nil
	} else {
		limits := GRPCLimits{MaxConns: 4096, MaxStreams: 1024, MaxRequest: o.MaxValue + 1<<20, IdleConnection: 5 * time.Minute}
		addr, done, err := ServeEtcdGRPC(serveCtx, o.GRPCAddr, NewEtcdKV(node, o.RequestTimeout, o.MaxValue), limits, reg, 10*time.Second)
		if err != nil {
			stopServing()
			client.Close()
			peer.Close()
			links.Close()
			_ = node.Stop()
			tr.Close()
			return apperr.Usage(err)
		}
		grpcAddr = addr.String()
		go func() { grpcDone <- <-done }()
	}
	logger.Info(peersA.StartLine())
	logger.Info("raftkv node up", "id", cfg.ID, "addr", client.Addr(), "peer_addr", peer.Addr(), "grpc_addr", grpcAddr, "peers", o.Peers, "fsync", cfg.Sync)
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
	links.Close()
	err = errors.Join(e1, e2, <-grpcDone, node.Stop())
	tr.Close()
	return err
}

// joinCluster asks a member to add this node and returns the members with
// their peer addresses.
func joinCluster(ctx context.Context, url string, id uint64, peerAddr string, admin *auth.AdminToken) ([]MemberAddr, error) {
	body, _ := json.Marshal(MemberAddr{ID: id, PeerAddr: peerAddr})
	var out struct {
		Members []MemberAddr `json:"members"`
		Error   string       `json:"error"`
	}
	err := resilience.Retry(ctx, resilience.Backoff{Initial: 500 * time.Millisecond, Attempts: 10}, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(url, "/")+"/v1/members", bytes.NewReader(body))
		admin.Header(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		return fmt.Errorf("%d %s", resp.StatusCode, out.Error)
	})
	if err != nil {
		return nil, fmt.Errorf("raftkv: joining through %s: %w", url, err)
	}
	return out.Members, nil
}

func memberCommand() *cobra.Command {
	root := &cobra.Command{Use: "member", Short: "Change the cluster's membership (one voter at a time)"}
	var server, peerAddr, token string
	var id uint64
	call := func(cmd *cobra.Command, method, path string, body []byte) error {
		req, _ := http.NewRequestWithContext(cmd.Context(), method, strings.TrimRight(server, "/")+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("raftkv: %d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
		}
		_, err = cmd.OutOrStdout().Write(raw)
		return err
	}
	add := &cobra.Command{
		Use: "add", Short: "Add a voter (start it with --join, or add it first and then start it with --join)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body, _ := json.Marshal(MemberAddr{ID: id, PeerAddr: peerAddr})
			return call(cmd, http.MethodPost, "/v1/members", body)
		},
	}
	add.Flags().StringVar(&peerAddr, "peer-addr", "", "the new member's Raft peer address")
	remove := &cobra.Command{
		Use: "remove", Short: "Remove a voter", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, http.MethodDelete, fmt.Sprintf("/v1/members/%d", id), nil)
		},
	}
	for _, c := range []*cobra.Command{add, remove} {
		c.Flags().StringVar(&server, "server", "http://127.0.0.1:7301", "any member's client URL")
		c.Flags().Uint64Var(&id, "id", 0, "the member's ID")
		c.Flags().StringVar(&token, "admin-token", os.Getenv("SCALELAB_ADMIN_TOKEN"), "the member's admin token ($SCALELAB_ADMIN_TOKEN; a node's default is in its DATA/admin-token)")
		_ = c.MarkFlagRequired("id")
	}
	root.AddCommand(add, remove)
	return root
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
