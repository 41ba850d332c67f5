package shortener

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	cfg := DefaultConfig()
	return host.ServeCommand("Serve the shortener: POST /api/v1/links, GET /{code}, stats, delete", "127.0.0.1:8082",
		func(f *pflag.FlagSet) {
			f.BoolVar(&cfg.Permanent, "permanent", cfg.Permanent, "answer redirects with 301 instead of 302")
			f.StringVar(&cfg.CreateLimit, "create-limit", cfg.CreateLimit, "per-client limit on link creation, COUNT/UNIT[:BURST] (s, m, h) or off; shared through Redis with --cache redis://")
			f.DurationVar(&cfg.CacheTTL, "cache-ttl", cfg.CacheTTL, "how long a link stays cached")
			f.DurationVar(&cfg.NegativeTTL, "negative-ttl", cfg.NegativeTTL, "how long an unknown code stays cached as unknown")
			f.IntVar(&cfg.ClickBuffer, "click-buffer", cfg.ClickBuffer, "click events buffered in front of the broker before new ones are dropped")
			cfg.Worker.BindFlags(f)
		},
		func() host.Factory { return Factory(cfg) })
}
