package flashsale

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/host"
)

// Command is the `scalelab flashsale` command group.
func Command() *cobra.Command {
	root := &cobra.Command{Use: "flashsale", Short: description}
	api, worker, functions := DefaultConfig(), DefaultConfig(), DefaultConfig()
	worker.Role, functions.Role = "worker", "functions"
	root.AddCommand(host.ServeCommand("Serve sales and orders (sync or async), the outbox relay and the sweeper", "127.0.0.1:8095",
		func(f *pflag.FlagSet) {
			bindCommon(f, &api)
			f.StringVar(&api.Mode, "mode", api.Mode, "sync (the order is paid inside the request) or async (admitted, then paid from a queue)")
			f.StringVar(&api.Processor, "processor", api.Processor, "what settles async orders in this process: workers, functions, none")
			bindProcessors(f, &api)
			f.DurationVar(&api.Deadline, "deadline", api.Deadline, "a reservation unpaid this long is released by the sweeper")
		},
		func() host.Factory { return Factory(api) }))
	w := host.ServeCommand("Process async orders with a pool of long-running workers (the ECS model)", "127.0.0.1:8096",
		func(f *pflag.FlagSet) { bindCommon(f, &worker); bindProcessors(f, &worker) }, func() host.Factory { return Factory(worker) })
	w.Use = "worker"
	fn := host.ServeCommand("Process async orders with functions: instances on demand, cold starts, idle reaping, a bill (the Lambda model)", "127.0.0.1:8097",
		func(f *pflag.FlagSet) { bindCommon(f, &functions); bindProcessors(f, &functions) }, func() host.Factory { return Factory(functions) })
	fn.Use = "functions"
	root.AddCommand(w, fn, luaCommand())
	return root
}

// luaCommand prints the gate's reservation script, so that a benchmark
// can run the very script the gate runs (bench/flashsale.sh feeds it to
// redis-benchmark).
func luaCommand() *cobra.Command {
	return &cobra.Command{Use: "gate-script", Hidden: true, Args: cobra.NoArgs,
		Short: "Print the Redis gate's reservation script (keys: left, limit, users, held; args: user, order, unix ms)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), reserveLua)
			return err
		}}
}

func bindCommon(f *pflag.FlagSet, c *Config) {
	f.StringVar(&c.Payment, "payment", c.Payment, "base URL of the payment service (`scalelab shop downstream`); empty runs it in-process")
	f.DurationVar(&c.PaymentTimeout, "payment-timeout", c.PaymentTimeout, "deadline of one payment call")
	c.WorkerID.BindFlags(f)
}

func bindProcessors(f *pflag.FlagSet, c *Config) {
	f.IntVar(&c.Workers.Concurrency, "workers", c.Workers.Concurrency, "workers: orders processed at once")
	f.IntVar(&c.Functions.Concurrency, "function-concurrency", c.Functions.Concurrency, "functions: instances at most")
	f.DurationVar(&c.Functions.ColdStart, "cold-start", c.Functions.ColdStart, "functions: a new instance's start-up")
	f.DurationVar(&c.Functions.IdleTimeout, "idle-timeout", c.Functions.IdleTimeout, "functions: an idle instance is reaped after this")
	f.IntVar(&c.Functions.MemoryMB, "memory-mb", c.Functions.MemoryMB, "functions: memory per instance, for the GB-second bill")
}
