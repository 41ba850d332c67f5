package cascade

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// Command is `scalelab experiment cascade`.
func Command() *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "cascade",
		Short: "Stall the shop's payment service under steady load, with resilience off and on, and report side by side",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Binary == "" {
				exe, err := os.Executable()
				if err != nil {
					return err
				}
				cfg.Binary = exe
			}
			out := cmd.OutOrStdout()
			cfg.Logf = func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
			results, err := Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintln(out)
			WriteMarkdown(out, cfg, results)
			abs, _ := filepath.Abs(cfg.Out)
			fmt.Fprintf(out, "\nreport: %s\n", filepath.Join(abs, "report.md"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Out, "out", cfg.Out, "report directory")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "load per mode")
	f.DurationVar(&cfg.StallAt, "stall-at", cfg.StallAt, "when the payment service stalls")
	f.DurationVar(&cfg.StallFor, "stall-for", cfg.StallFor, "how long it stays stalled")
	f.Float64Var(&cfg.CatalogRate, "catalog-rate", cfg.CatalogRate, "catalog searches per second")
	f.Float64Var(&cfg.CartRate, "cart-rate", cfg.CartRate, "cart creations per second")
	f.Float64Var(&cfg.CheckoutRate, "checkout-rate", cfg.CheckoutRate, "checkouts per second")
	f.DurationVar(&cfg.PaymentLatency, "payment-latency", cfg.PaymentLatency, "the downstream services' normal latency")
	f.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "the shop's request concurrency bound (both modes)")
	f.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "the load generator gives up on a request after this")
	f.StringVar(&cfg.Binary, "binary", "", "scalelab binary that runs the shop (default: this one)")
	return cmd
}

// ExperimentCommand is the `scalelab experiment` group.
func ExperimentCommand() *cobra.Command {
	root := &cobra.Command{Use: "experiment", Short: "Experiments that break a running system on purpose and measure what happens"}
	root.AddCommand(Command())
	return root
}
