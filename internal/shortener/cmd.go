package shortener

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/platform/host"
)

// Command is the `scalelab shortener` command group.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "shortener",
		Short: "URL shortener: cached redirects, click analytics over the broker",
	}
	root.AddCommand(serveCommand())
	return root
}

func serveCommand() *cobra.Command {
	var e host.Engines
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the shortener: POST /api/v1/links, GET /{code}, stats, delete",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := host.Logger(cmd.ErrOrStderr(), e.Debug)
			return host.ServeOne(cmd.Context(), e, logger, Factory(cfg).New, nil)
		},
	}
	e.BindFlags(cmd.Flags(), "127.0.0.1:8082")
	f := cmd.Flags()
	f.BoolVar(&cfg.Permanent, "permanent", cfg.Permanent, "answer redirects with 301 instead of 302")
	f.StringVar(&cfg.AdminToken, "admin-token", envOr("SCALELAB_ADMIN_TOKEN", ""), "token that may delete any link ($SCALELAB_ADMIN_TOKEN)")
	f.StringVar(&cfg.CreateLimit, "create-limit", cfg.CreateLimit, "per-client limit on link creation, COUNT/UNIT[:BURST] (s, m, h) or off; shared through Redis with --cache redis://")
	f.DurationVar(&cfg.CacheTTL, "cache-ttl", cfg.CacheTTL, "how long a link stays cached")
	f.DurationVar(&cfg.NegativeTTL, "negative-ttl", cfg.NegativeTTL, "how long an unknown code stays cached as unknown")
	f.IntVar(&cfg.ClickBuffer, "click-buffer", cfg.ClickBuffer, "click events buffered in front of the broker before new ones are dropped")
	f.IntVar(&cfg.WorkerID, "worker-id", cfg.WorkerID, "Snowflake worker ID for codes, 0–1023; -1 leases a free one")
	f.StringVar(&cfg.LeaseStore, "lease-store", cfg.LeaseStore, "where worker-ID leases live: auto, sql, redis")
	f.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL, "worker-ID lease TTL")
	return cmd
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
