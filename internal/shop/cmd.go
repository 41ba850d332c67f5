package shop

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/resilience"
)

// Command is the `scalelab shop` command group.
func Command() *cobra.Command {
	root := &cobra.Command{Use: "shop", Short: description}
	cfg := DefaultConfig()
	root.AddCommand(host.ServeCommand("Serve the shop: catalog and search, carts, idempotent checkout", "127.0.0.1:8093",
		func(f *pflag.FlagSet) {
			f.StringVar(&cfg.Downstream, "downstream", cfg.Downstream, "base URL of the inventory and payment services (`scalelab shop downstream`); empty runs them in-process, without faults")
			f.BoolVar(&cfg.Protect, "resilience", cfg.Protect, "protect downstream calls with timeouts, retries, breakers and bulkheads (false: the naive client)")
			bindDependency(f, "inventory", &cfg.Inventory)
			bindDependency(f, "payment", &cfg.Payment)
			f.DurationVar(&cfg.DBTimeout, "db-timeout", cfg.DBTimeout, "deadline of each database call on a request")
			f.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "requests handled at once; more get 503 (0: no bound)")
			f.DurationVar(&cfg.PendingTimeout, "pending-timeout", cfg.PendingTimeout, "a checkout pending this long is settled by the reconciler")
			f.DurationVar(&cfg.ReconcileEvery, "reconcile-every", cfg.ReconcileEvery, "how often the reconciler looks for stale pending checkouts (0: never)")
			cfg.Worker.BindFlags(f)
		},
		func() host.Factory { return Factory(cfg) }))
	root.AddCommand(downstreamCommand())
	return root
}

func bindDependency(f *pflag.FlagSet, name string, c *resilience.Config) {
	f.DurationVar(&c.Timeout, name+"-timeout", c.Timeout, "deadline of one "+name+" call attempt")
	f.IntVar(&c.Retries, name+"-retries", c.Retries, name+" retries after a failed attempt (with jittered exponential backoff)")
	f.IntVar(&c.MaxConcurrent, name+"-max-concurrent", c.MaxConcurrent, name+" calls in flight at most (bulkhead)")
	f.DurationVar(&c.BreakerDelay, name+"-breaker-delay", c.BreakerDelay, "how long "+name+"'s breaker stays open before probing")
}

func downstreamCommand() *cobra.Command {
	var (
		addr, stallService   string
		adminToken           string
		latency              time.Duration
		failRate             float64
		stallAfter, stallFor time.Duration
		seed                 uint64
	)
	cmd := &cobra.Command{
		Use:   "downstream",
		Short: "Simulate the inventory and payment services on one address, with injectable latency, failures and stalls",
		Long: `Serves POST /inventory/reservations, DELETE /inventory/reservations/{orderId},
POST /payments (Idempotency-Key header), GET /payments/{key}, POST /payments/{key}/void,
and the control API: GET /control, PUT /control/{inventory|payment}
{"latency":"20ms","failRate":0.1,"stalled":true}, GET /stats — these need
Authorization: Bearer TOKEN (--admin-token; a random one is made and
printed at start when none is given).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := downstream.New(seed)
			for _, s := range downstream.Services {
				if err := d.SetFaults(s, downstream.Faults{Latency: latency, FailRate: failRate}); err != nil {
					return fmt.Errorf("shop downstream: %w", err)
				}
			}
			printed := ""
			if adminToken == "" {
				adminToken = auth.NewKeyText()
				printed = " (control API token: " + adminToken + ")"
			}
			admin, err := auth.NewAdminToken(adminToken)
			if err != nil {
				return err
			}
			logger := host.Logger(cmd.ErrOrStderr(), false)
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			srv := httpx.NewServer(httpx.ServerConfig{Addr: addr}, httpx.Ops(d.Handler(admin), reg, nil), logger)
			if err := srv.Listen(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "shop downstream on http://%s (latency %s, fail rate %g)%s\n", srv.Addr(), latency, failRate, printed)
			return downstream.Run(ctx, d, srv, stallService, stallAfter, stallFor)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8094", "listen address")
	f.DurationVar(&latency, "latency", 20*time.Millisecond, "added to every request of both services")
	f.Float64Var(&failRate, "fail-rate", 0, "fraction of requests that fail (half before doing the work, half after)")
	f.DurationVar(&stallAfter, "stall-after", 0, "stall --stall-service this long after start (0: never)")
	f.DurationVar(&stallFor, "stall-for", 0, "lift the stall after this long (0: never)")
	f.StringVar(&stallService, "stall-service", "payment", "the service that stalls: payment or inventory")
	f.Uint64Var(&seed, "seed", 1, "seed of the failure draws")
	f.StringVar(&adminToken, "admin-token", os.Getenv("SCALELAB_ADMIN_TOKEN"), "token of the control API ($SCALELAB_ADMIN_TOKEN)")
	return cmd
}
