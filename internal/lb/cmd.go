package lb

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/lb/balance"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
)

// FileConfig is --config: the same settings as the flags, as JSON.
type FileConfig struct {
	Addr      string   `json:"addr"`
	AdminAddr string   `json:"admin_addr"`
	Policy    string   `json:"policy"`
	Backends  []string `json:"backends"` // "URL" or "URL,weight"
	Health    *struct {
		Path     string `json:"path"`
		Interval string `json:"interval"`
		Rise     int    `json:"rise"`
		Fall     int    `json:"fall"`
	} `json:"health"`
}

// Command is `scalelab lb`.
func Command() *cobra.Command {
	root := &cobra.Command{Use: "lb", Short: "An L7 load balancer: policies, health checks, outlier ejection, retries, an admin API"}
	root.AddCommand(serveCommand())
	return root
}

func serveCommand() *cobra.Command {
	pcfg, xcfg := DefaultPoolConfig(), DefaultProxyConfig()
	scfg := ServeConfig{Addr: "127.0.0.1:8090", AdminAddr: "127.0.0.1:8091", IdleTimeout: 2 * time.Minute, DrainTimeout: 10 * time.Second}
	var backends []string
	var configFile, adminToken, data, pprofAddr string
	var verbose bool
	gcPercent := 400
	cmd := &cobra.Command{Use: "serve", Args: cobra.NoArgs, Short: "Balance HTTP (and WebSocket) traffic over backends",
		Example: "  scalelab lb serve --addr 127.0.0.1:8090 --backend http://127.0.0.1:8081 --backend http://127.0.0.1:8082,2 --policy peak-ewma"}
	f := cmd.Flags()
	f.StringVar(&scfg.Addr, "addr", scfg.Addr, "client address")
	f.StringVar(&scfg.Mode, "mode", "http", "http (L7: requests) or tcp (L4: connections, any protocol)")
	f.StringVar(&scfg.AdminAddr, "admin-addr", scfg.AdminAddr, "admin API, /healthz, /readyz and /metrics (kept off the client port)")
	f.StringArrayVar(&backends, "backend", nil, "a backend, URL or URL,weight (repeat)")
	f.StringVar(&configFile, "config", "", "JSON file with addr, admin_addr, policy, backends, health")
	f.StringVar(&pcfg.Policy, "policy", pcfg.Policy, fmt.Sprintf("balancing policy: %v", balance.Names))
	f.StringVar(&pcfg.HealthPath, "health-path", pcfg.HealthPath, "active check path (empty: passive detection only)")
	f.DurationVar(&pcfg.HealthInterval, "health-interval", pcfg.HealthInterval, "active check interval")
	f.IntVar(&pcfg.Rise, "rise", pcfg.Rise, "good checks in a row that bring a backend up")
	f.IntVar(&pcfg.Fall, "fall", pcfg.Fall, "failed checks in a row that take it down")
	f.IntVar(&pcfg.Outliers.Consecutive, "eject-after", pcfg.Outliers.Consecutive, "gateway failures in a row that eject a backend")
	f.DurationVar(&pcfg.Outliers.BaseEjection, "ejection", pcfg.Outliers.BaseEjection, "first ejection's length (then ×2, ×3 … up to 5 min)")
	f.DurationVar(&pcfg.SlowStart.Window, "slow-start", pcfg.SlowStart.Window, "a returning backend's weight ramps up over this (0: off)")
	f.StringVar(&xcfg.HashHeader, "hash-header", "", "header the ip-hash and consistent policies hash instead of the client address")
	f.IntVar(&xcfg.MaxRetries, "retries", xcfg.MaxRetries, "retries of an idempotent request, each to another backend (within a 20 % budget)")
	f.DurationVar(&xcfg.Timeout, "timeout", xcfg.Timeout, "how long a backend has to answer (headers)")
	f.Int64Var(&xcfg.MaxBody, "max-body", xcfg.MaxBody, "largest request body")
	f.IntVar(&scfg.MaxConns, "max-conns", 0, "client connections at most (default: from the descriptor limit)")
	f.StringVar(&adminToken, "admin-token", os.Getenv("SCALELAB_ADMIN_TOKEN"), "admin token (default: DATA/admin-token, made if absent)")
	f.StringVar(&data, "data", "./data/lb", "where the admin token is kept")
	f.BoolVar(&verbose, "debug", false, "debug logs")
	f.StringVar(&pprofAddr, "pprof", "", "serve the Go profiler on this address (e.g. 127.0.0.1:6060)")
	f.IntVar(&gcPercent, "gc-percent", gcPercent, "the Go collector's GOGC (a GOGC in the environment wins)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if os.Getenv("GOGC") == "" {
			// The balancer's live heap is a few MiB while it allocates per
			// request: at the default 100 the collector runs many times a
			// second. 400 measured a quarter more requests/s and a lower
			// p99 (docs/lb.md) for a heap still in the tens of MiB.
			debug.SetGCPercent(gcPercent)
		}
		if configFile != "" {
			if err := applyFile(configFile, &scfg, &pcfg, &backends); err != nil {
				return err
			}
		}
		switch scfg.Mode {
		case "http":
		case "tcp":
			pcfg.TCPChecks = true
		default:
			return apperr.Usagef("--mode: http or tcp, not %q", scfg.Mode)
		}
		admin, where, err := auth.LoadAdminToken(adminToken, data)
		if err != nil {
			return err
		}
		logger := host.Logger(cmd.ErrOrStderr(), verbose)
		logger.Info("admin token", "from", where)
		if pprofAddr != "" {
			go host.ServePprof(cmd.Context(), pprofAddr, logger)
		}
		scfg.DataDir = data
		b, err := New(pcfg, xcfg, admin, backends)
		if err != nil {
			return err
		}
		return b.Serve(cmd.Context(), scfg, logger)
	}
	return cmd
}

func applyFile(path string, scfg *ServeConfig, pcfg *PoolConfig, backends *[]string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return apperr.Usage(err)
	}
	var fc FileConfig
	if err := json.Unmarshal(raw, &fc); err != nil {
		return apperr.Usagef("--config %s: %v", path, err)
	}
	if fc.Addr != "" {
		scfg.Addr = fc.Addr
	}
	if fc.AdminAddr != "" {
		scfg.AdminAddr = fc.AdminAddr
	}
	if fc.Policy != "" {
		pcfg.Policy = fc.Policy
	}
	*backends = append(*backends, fc.Backends...)
	if h := fc.Health; h != nil {
		pcfg.HealthPath = h.Path
		if h.Interval != "" {
			d, err := time.ParseDuration(h.Interval)
			if err != nil || d <= 0 {
				return apperr.Usagef("--config %s: health.interval %q is not a duration", path, h.Interval)
			}
			pcfg.HealthInterval = d
		}
		if h.Rise > 0 {
			pcfg.Rise = h.Rise
		}
		if h.Fall > 0 {
			pcfg.Fall = h.Fall
		}
	}
	return nil
}
