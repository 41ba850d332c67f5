package dynamo

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/dynamo/client"
	"github.com/scalelab/scalelab/internal/dynamo/store"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Command is `scalelab dynamo`.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "dynamo",
		Short: "A Dynamo-style key-value store: run a node, or be its client",
	}
	root.AddCommand(nodeCommand(), getCommand(), putCommand(), delCommand())
	return root
}

func nodeCommand() *cobra.Command {
	cfg := DefaultConfig()
	var addr, peerAddr, gossipAddr, join, engine, sync, pprofAddr, keyFile, transport string
	var leave, debug, fast bool
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run one node: client API on --addr, replica RPC on --peer-addr, gossip on --gossip, data in --data",
		Example: `  scalelab dynamo node --id n1 --addr 127.0.0.1:7101 --peer-addr 127.0.0.1:7151 --gossip 127.0.0.1:7201 --data /tmp/d1
  scalelab dynamo node --id n2 --addr 127.0.0.1:7102 --peer-addr 127.0.0.1:7152 --gossip 127.0.0.1:7202 --join 127.0.0.1:7201 --data /tmp/d2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, err := store.ParseSyncMode(sync)
			if err != nil {
				return apperr.Usage(err)
			}
			cfg.Sync = mode
			if cfg.Engine, err = store.ParseEngine(engine); err != nil {
				return apperr.Usage(err)
			}
			logger := host.Logger(cmd.ErrOrStderr(), debug)
			if pprofAddr != "" {
				go host.ServePprof(cmd.Context(), pprofAddr, logger)
			}
			var seeds []string
			if join != "" {
				seeds = strings.Split(join, ",")
			}
			key, err := auth.LoadKey(keyFile)
			if err != nil {
				return apperr.Usage(err)
			}
			if transport != string(PeerLink) && transport != string(PeerHTTP) {
				return apperr.Usage(fmt.Errorf("--peer-transport %q: want link or http", transport))
			}
			return RunNode(cmd.Context(), cfg, GossipConfig{Bind: gossipAddr, Join: seeds, Fast: fast},
				Listen{Addr: addr, PeerAddr: peerAddr, ClusterKey: key, Transport: PeerTransport(transport)}, leave, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ID, "id", "", "node name, unique in the cluster (required)")
	f.StringVar(&addr, "addr", "127.0.0.1:7101", "client HTTP listen address")
	f.StringVar(&peerAddr, "peer-addr", "127.0.0.1:7151", "peer listen address: replica RPC (mutual TLS with --cluster-key; loopback only without)")
	f.StringVar(&transport, "peer-transport", string(PeerLink), "how this node sends to peers: link (one framed connection per peer, many messages in flight) or http (one POST per message); a node serves both")
	f.StringVar(&keyFile, "cluster-key", os.Getenv("SCALELAB_CLUSTER_KEY"), "file holding the cluster key, the same on every member: peers over mutual TLS, gossip encrypted ($SCALELAB_CLUSTER_KEY; make one with `scalelab cluster-key`)")
	f.StringVar(&gossipAddr, "gossip", "127.0.0.1:7201", "gossip listen address (UDP and TCP)")
	f.StringVar(&join, "join", "", "comma-separated gossip addresses of existing members")
	f.StringVar(&cfg.DataDir, "data", "./data/dynamo", "directory of the node's store")
	f.StringVar(&engine, "engine", string(cfg.Engine), "storage engine: pebble (log-structured: a commit is a log append) or bbolt (B+tree: a commit rewrites its pages)")
	f.StringVar(&sync, "sync", string(cfg.Sync), "durability: always (fsync per write), batch (group commit), none")
	f.IntVar(&cfg.N, "n", cfg.N, "replicas per key (same on every node)")
	f.IntVar(&cfg.R, "r", cfg.R, "default read quorum")
	f.IntVar(&cfg.W, "w", cfg.W, "default write quorum")
	f.IntVar(&cfg.VNodes, "vnodes", cfg.VNodes, "virtual nodes per node (same on every node)")
	f.IntVar(&cfg.MaxValue, "max-value", cfg.MaxValue, "largest value in bytes")
	f.IntVar(&cfg.MaxSiblings, "max-siblings", cfg.MaxSiblings, "most versions (siblings) one key may hold; a write past it is refused with 400")
	f.IntVar(&cfg.MaxKeyBytes, "max-key-bytes", cfg.MaxKeyBytes, "most bytes one key's versions may hold together; a write past it is refused with 400")
	f.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "timeout of one replica request")
	f.DurationVar(&cfg.SpeculativeRead, "speculative-read", cfg.SpeculativeRead, "a read asks R replicas (this node first), and the rest of the N after this long without a quorum (0: all N at once)")
	f.DurationVar(&cfg.SyncInterval, "sync-interval", cfg.SyncInterval, "anti-entropy, range hand-off and reaping period")
	f.DurationVar(&cfg.HintInterval, "hint-interval", cfg.HintInterval, "hinted hand-off period")
	f.DurationVar(&cfg.TombstoneGrace, "tombstone-grace", cfg.TombstoneGrace, "age after which a tombstone is reaped")
	f.DurationVar(&cfg.DeadAfter, "dead-after", cfg.DeadAfter, "how long a dead node stays on the ring before its ranges move")
	f.BoolVar(&leave, "leave-on-shutdown", false, "on Ctrl-C, hand all data to the other nodes and leave the cluster (default: stop, as for a restart)")
	f.BoolVar(&debug, "debug", false, "log every request and gossip event")
	f.StringVar(&pprofAddr, "pprof-addr", "", "serve /debug/pprof on this separate address, e.g. 127.0.0.1:6060")
	f.BoolVar(&fast, "gossip-fast", false, "probe peers every 200ms instead of every second (tests and demos on one machine)")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

// Listen is where a node serves, and how it admits peers.
type Listen struct {
	Addr       string        // clients
	PeerAddr   string        // replica RPC
	ClusterKey *auth.Key     // nil: unauthenticated peers, loopback only
	Transport  PeerTransport // how this node sends to peers (default: link)
}

// RunNode runs a node with gossip membership and a peer transport until
// ctx ends. With leave set it hands its data off and leaves first.
func RunNode(ctx context.Context, cfg Config, gc GossipConfig, l Listen, leave bool, logger *slog.Logger) error {
	peers, err := auth.NewPeers(l.ClusterKey, "dynamo-"+cfg.ID)
	if err != nil {
		return err
	}
	for _, a := range []string{l.PeerAddr, gc.Bind} {
		if err := peers.CheckAddr(a); err != nil {
			return apperr.Usage(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg.Logger, cfg.Registry = logger, reg
	srv := httpx.NewServer(httpx.ServerConfig{Addr: l.Addr}, nil, logger)
	peerSrv := httpx.NewServer(httpx.ServerConfig{Addr: l.PeerAddr, ReadTimeout: time.Minute, WriteTimeout: time.Minute, TLS: peers.ServerTLS()}, nil, logger)
	if err := errors.Join(srv.Listen(), peerSrv.Listen()); err != nil {
		srv.Close()
		peerSrv.Close()
		return err
	}
	gc.Name, gc.HTTPAddr, gc.PeerAddr, gc.SecretKey, gc.Logger = cfg.ID, srv.Addr(), peerSrv.Addr(), l.ClusterKey.GossipKey(), logger
	g, err := NewGossip(gc)
	if err != nil {
		srv.Close()
		peerSrv.Close()
		return err
	}
	var tr interface {
		Transport
		Close()
	}
	if l.Transport == PeerHTTP {
		tr = NewHTTPTransport(g.Resolve, peers)
	} else {
		tr = NewLinkTransport(g.Resolve, peers)
	}
	node, err := Open(cfg, g, tr)
	if err != nil {
		g.Close()
		srv.Close()
		peerSrv.Close()
		return err
	}
	metrics := httpx.NewMetrics(reg)
	app := httpx.Instrument("dynamo", metrics, node.MaxBody(), logger, node.Handler())
	ui := host.NodeConsole{System: "dynamo", Description: "Dynamo node " + cfg.ID + ": its own view of the ring and the members",
		View: func() any { return node.Snapshot() }, Metrics: metrics, Gather: reg, DataDir: cfg.DataDir}
	srv.SetHandler(host.WithNodeUI(ctx, httpx.Ops(httpx.JSONErrors(app), reg, nil), ui))
	links := node.NewLinkServer(logger)
	peerSrv.SetHandler(peers.Guard(node.PeerHandler(links), auth.Limits{MaxBody: node.MaxPeerBody(), MaxConcurrent: 64}, reg))
	logger.Info(peers.StartLine())
	logger.Info("dynamo node up", "id", cfg.ID, "http", srv.Addr(), "peer", peerSrv.Addr(), "gossip", gc.Bind, "join", gc.Join,
		"engine", cfg.Engine, "sync", cfg.Sync, "peer_transport", cmp.Or(l.Transport, PeerLink),
		"n", cfg.N, "r", cfg.R, "w", cfg.W)
	serveErr := make(chan error, 2)
	serveCtx, stopServing := context.WithCancel(context.Background())
	defer stopServing()
	go func() { serveErr <- srv.Serve(serveCtx) }()
	go func() { serveErr <- peerSrv.Serve(serveCtx) }()
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		stopServing()
		<-serveErr
		links.Close()
		tr.Close()
		node.Close()
		g.Close()
		return err
	}
	var errs []error
	if leave {
		leaveCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := node.Leave(leaveCtx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	stopServing()
	errs = append(errs, <-serveErr, <-serveErr)
	links.Close()
	tr.Close()
	errs = append(errs, node.Close(), g.Close())
	return errors.Join(errs...)
}

type clientFlags struct {
	server  string
	quorum  int
	context string
}

func (c *clientFlags) bind(cmd *cobra.Command, q string) {
	cmd.Flags().StringVar(&c.server, "server", envOr("SCALELAB_DYNAMO", "http://127.0.0.1:7101"), "any node's URL ($SCALELAB_DYNAMO)")
	cmd.Flags().IntVar(&c.quorum, q, 0, "replicas that must answer (default: the node's)")
	if q == "w" {
		cmd.Flags().StringVar(&c.context, "context", "", "causal context from a read (X-Causal-Context): the versions this write replaces")
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func getCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Read a key: the value on stdout, the causal context on stderr; siblings as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := client.New(c.server).Get(cmd.Context(), args[0], c.quorum)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "context: %s\n", res.Context)
			switch {
			case !res.Found():
				return fmt.Errorf("%s: not found", args[0])
			case res.Conflict():
				s := Siblings{Context: res.Context}
				for _, v := range res.Values {
					s.Siblings = append(s.Siblings, base64.StdEncoding.EncodeToString(v))
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			_, err = cmd.OutOrStdout().Write(res.Values[0])
			return err
		},
	}
	c.bind(cmd, "r")
	return cmd
}

func putCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Write a key (VALUE - reads stdin); prints the new causal context",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			value := []byte(args[1])
			if args[1] == "-" {
				var err error
				if value, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			ctx, err := client.New(c.server).Put(cmd.Context(), args[0], value, c.context, c.quorum)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ctx)
			return nil
		},
	}
	c.bind(cmd, "w")
	return cmd
}

func delCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete a key (pass --context from a read to delete what you saw)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := client.New(c.server).Delete(cmd.Context(), args[0], c.context, c.quorum)
			return err
		},
	}
	c.bind(cmd, "w")
	return cmd
}
