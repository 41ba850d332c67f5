package chat

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/host"
)

// Command is the `scalelab chat` command group.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "chat",
		Short: "WebSocket chat: servers fan rooms out through the broker, persisters batch them into SQL",
	}
	root.AddCommand(serveCommand(), persistCommand())
	return root
}

func serveCommand() *cobra.Command {
	cfg := DefaultConfig()
	cfg.Persist = false
	var origins string
	return host.ServeCommand("Serve WebSocket rooms at GET /chat/{roomId} and the query API under /api/v1", "127.0.0.1:8090",
		func(f *pflag.FlagSet) {
			bindServerFlags(f, &cfg.Server)
			f.StringVar(&origins, "allowed-origins", "", "comma-separated host patterns of cross-origin pages allowed to connect (same-origin always is)")
			cfg.Worker.BindFlags(f)
		},
		func() host.Factory {
			if origins != "" {
				cfg.Server.OriginPatterns = strings.Split(origins, ",")
			}
			return Factory(cfg)
		})
}

func bindServerFlags(f *pflag.FlagSet, c *ServerConfig) {
	f.IntVar(&c.Rooms, "rooms", c.Rooms, "rooms are 1..N")
	f.IntVar(&c.SendBuffer, "send-buffer", c.SendBuffer, "frames queued per connection before it is closed as a slow consumer")
	f.IntVar(&c.MaxPending, "max-pending", c.MaxPending, "messages per connection awaiting the broker's ack before the server stops reading it")
	f.StringVar(&c.RateLimit, "rate-limit", c.RateLimit, "messages per connection, COUNT/UNIT[:BURST] (s, m, h) or off")
	f.DurationVar(&c.PublishTimeout, "publish-timeout", c.PublishTimeout, "how long a message waits for the broker's ack before the sender gets an ERROR")
	f.IntVar(&c.PublishBatch, "publish-batch", c.PublishBatch, "chat messages per broker message (envelope) at most; envelopes grow only while earlier ones await their ack")
	f.IntVar(&c.PublishBytes, "publish-bytes", c.PublishBytes, "bytes per envelope at most")
	f.IntVar(&c.PublishFlight, "publish-in-flight", c.PublishFlight, "envelopes awaiting the broker's ack at once, per server")
	f.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "per frame written to a client")
}

func persistCommand() *cobra.Command {
	cfg := DefaultConfig()
	cfg.Serve = false
	var e host.Engines
	cmd := &cobra.Command{
		Use:   "persist",
		Short: "Consume every room's messages and write them to the SQL store in batches (several may run at once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if e.BrokerPrefetch == 0 {
				e.BrokerPrefetch = 2 * cfg.Persister.BatchSize // a full batch in hand while the next one arrives
			}
			return host.ServeOne(cmd.Context(), e, host.Logger(cmd.ErrOrStderr(), e.Debug), Factory(cfg).New, nil)
		},
	}
	e.BindFlags(cmd.Flags(), "127.0.0.1:8091")
	f := cmd.Flags()
	f.IntVar(&cfg.Persister.BatchSize, "batch-size", cfg.Persister.BatchSize, "rows per transaction at most")
	f.DurationVar(&cfg.Persister.BatchWait, "batch-wait", cfg.Persister.BatchWait, "how long a batch waits to fill before it is written")
	f.IntVar(&e.BrokerPrefetch, "broker-prefetch", 0, "messages held unsettled from the broker (default 2 × batch size)")
	return cmd
}
