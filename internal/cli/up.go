package cli

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/console"
	"github.com/scalelab/scalelab/internal/crawler"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

func upCommand() *cobra.Command {
	var e host.Engines
	var origins, crawlerDNS, raftkvEtcd string
	var crawlerNets []string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start every system in one process on embedded defaults, with the console at /",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var patterns []string
			if origins != "" {
				patterns = strings.Split(origins, ",")
			}
			crawlerCfg, err := crawler.UpConfig(crawlerDNS, crawlerNets)
			if err != nil {
				return apperr.Usage(err)
			}
			return Up(cmd.Context(), e, systemsWith(patterns, crawlerCfg, raftkvEtcd), host.Logger(cmd.ErrOrStderr(), e.Debug), nil)
		},
	}
	e.BindFlags(cmd.Flags(), "127.0.0.1:8080")
	cmd.Flags().StringVar(&origins, "allowed-origins", "", "comma-separated host patterns of cross-origin pages allowed to open the chat's WebSockets (its own page, /chat/page, is same-origin)")
	cmd.Flags().StringVar(&crawlerDNS, "crawler-dns-server", "", "the crawler asks this DNS server (host:port) instead of the system's resolver (the synthetic web's, `scalelab crawler testweb`: 127.0.0.1:8353)")
	cmd.Flags().StringVar(&raftkvEtcd, "raftkv-etcd-addr", "127.0.0.1:2379", "serve etcd's v3 KV API (gRPC) for the raftkv cluster here, so etcdctl and clientv3 programs work against it (\"\": off)")
	cmd.Flags().StringSliceVar(&crawlerNets, "crawler-allow-net", nil, "the crawler's SSRF guard lets this private or loopback prefix through (the synthetic web's: 127.20.0.0/16)")
	return cmd
}

// Up runs the given systems, each under /<name>/, on one server with shared
// engines until ctx ends. ready, if not nil, gets the base URL once bound.
func Up(ctx context.Context, e host.Engines, factories []host.Factory, logger *slog.Logger, ready func(url string)) error {
	// Bind first: a bad or busy address must leave nothing behind (no
	// ./data, no files).
	srv, err := host.Listen(e, logger)
	if err != nil {
		return err
	}
	d, err := host.Open(ctx, e, logger)
	if err != nil {
		srv.Close()
		return err
	}
	base := d.PublicURL(srv)
	mux := http.NewServeMux()
	var started []host.System
	fail := func(err error) error {
		for _, s := range started {
			_ = s.Close(context.Background())
		}
		srv.Close()
		d.Close()
		return err
	}
	for _, f := range factories {
		sd := *d
		sd.BaseURL = base + "/" + f.Name
		sys, err := f.New(ctx, &sd)
		if err != nil {
			return fail(fmt.Errorf("start %s: %w", f.Name, err))
		}
		started = append(started, sys)
		prefix := "/" + sys.Name()
		mux.Handle(prefix+"/", http.StripPrefix(prefix, d.Instrument(sys)))
	}
	con := console.New(base, started, d.Metrics, d.Admin, d.Engines.Data, d.Registry)
	go con.Run(ctx)
	mux.Handle("/", con.Handler())
	if ready != nil {
		ready(base)
	}
	logger.Info("scalelab is up", "console", base+"/", "systems", len(started))
	return host.Run(ctx, d, srv, started, httpx.JSONErrors(mux))
}
