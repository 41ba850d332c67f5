package autoscale

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/host"
)

// Command is `scalelab autoscale … -- COMMAND…`.
func Command() *cobra.Command {
	cfg := Config{Metric: MetricRPS, Interval: 5 * time.Second, Ready: 20 * time.Second, Drain: 10 * time.Second}
	policy := DefaultPolicy(1, 6, 100)
	var debug bool
	cmd := &cobra.Command{
		Use:   "autoscale [flags] -- COMMAND [ARGS…]",
		Short: "Run copies of a backend behind `scalelab lb` and scale them on a metric (the Kubernetes HPA rule)",
		Example: "  scalelab autoscale --lb-admin http://127.0.0.1:8091 --metric rps --target 200 --min 1 --max 4 -- \\\n" +
			"      scalelab shortener serve --addr 127.0.0.1:{port} --data /tmp/s{port}",
		Args: cobra.MinimumNArgs(1),
	}
	f := cmd.Flags()
	f.IntVar(&policy.Min, "min", policy.Min, "fewest copies")
	f.IntVar(&policy.Max, "max", policy.Max, "most copies")
	f.Float64Var(&policy.Target, "target", policy.Target, "the metric per copy to hold")
	f.StringVar(&cfg.Metric, "metric", cfg.Metric, fmt.Sprintf("what to hold: %s (requests/s), %s (cores busy), %s (seconds), %s (requests in progress, from the balancer)",
		MetricRPS, MetricCPU, MetricP99, MetricInFlight))
	f.Float64Var(&policy.Tolerance, "tolerance", policy.Tolerance, "relative band around the target without action")
	f.DurationVar(&policy.Window, "window", policy.Window, "scale-down stabilisation window")
	f.DurationVar(&policy.CoolDown, "cooldown", policy.CoolDown, "no change sooner than this after the last")
	f.DurationVar(&cfg.Interval, "interval", cfg.Interval, "measure and decide this often")
	f.StringVar(&cfg.LBAdmin, "lb-admin", "http://127.0.0.1:8091", "the balancer's admin URL (scalelab lb serve --admin-addr)")
	f.StringVar(&cfg.LBToken, "lb-token", os.Getenv("SCALELAB_ADMIN_TOKEN"), "the balancer's admin token (default $SCALELAB_ADMIN_TOKEN)")
	f.DurationVar(&cfg.Drain, "drain", cfg.Drain, "how long a stopping copy's requests get")
	f.StringVar(&cfg.LogDir, "log-dir", "", "write each copy's output here")
	f.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:8092", "the fleet's view, /healthz, /readyz, /metrics and the console at /ui/ (empty: none)")
	f.BoolVar(&debug, "debug", false, "debug logs")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := policy.Check(); err != nil {
			return apperr.Usage(err)
		}
		if err := CheckMetric(cfg.Metric); err != nil {
			return apperr.Usage(err)
		}
		if !strings.Contains(strings.Join(args, " "), "{port}") {
			return apperr.Usagef("the backend command needs {port} in its arguments, where each copy's port goes")
		}
		if cfg.LBToken == "" {
			return apperr.Usagef("give the balancer's admin token: --lb-token or $SCALELAB_ADMIN_TOKEN")
		}
		if cfg.Interval < 100*time.Millisecond {
			return apperr.Usagef("--interval: at least 100ms")
		}
		cfg.Policy, cfg.Command = policy, args
		cfg.Logger = host.Logger(cmd.ErrOrStderr(), debug)
		return Run(cmd.Context(), cfg)
	}
	return cmd
}
