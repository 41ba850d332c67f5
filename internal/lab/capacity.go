package lab

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// capacityCommand is the backend the scale-out experiment runs copies of:
// one small instance with a fixed capacity. At most --capacity requests
// are served at once, each taking --cost (a wait, not CPU: on a machine
// with fewer cores than copies, only a capacity that is not the CPU can
// show what more copies buy); up to --queue more wait for a slot, and the
// rest are refused at once with 503, as an overloaded instance behind a
// bounded queue does.
func capacityCommand() *cobra.Command {
	var addr string
	var capacity, queue int
	var cost time.Duration
	cmd := &cobra.Command{Use: "capacity-backend", Hidden: true, Args: cobra.NoArgs,
		Short: "A backend of fixed capacity (the scale-out experiment runs copies of it)"}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:0", "listen address")
	cmd.Flags().IntVar(&capacity, "capacity", 8, "requests served at once")
	cmd.Flags().IntVar(&queue, "queue", 32, "requests waiting for a slot at most (the rest: 503)")
	cmd.Flags().DurationVar(&cost, "cost", 20*time.Millisecond, "each request's service time")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if capacity < 1 || queue < 0 || cost < 0 {
			return apperr.Usagef("want --capacity ≥ 1, --queue ≥ 0, --cost ≥ 0")
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		metrics := httpx.NewMetrics(reg)
		slots, waiting := make(chan struct{}, capacity), make(chan struct{}, capacity+queue)
		mux := http.NewServeMux()
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			select {
			case waiting <- struct{}{}:
			default:
				httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "over capacity: %d served and %d waiting", capacity, queue))
				return
			}
			defer func() { <-waiting }()
			select {
			case slots <- struct{}{}:
			case <-r.Context().Done():
				return
			}
			defer func() { <-slots }()
			t := time.NewTimer(cost)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write([]byte("ok"))
		})
		logger := host.Logger(cmd.ErrOrStderr(), false)
		srv := httpx.NewServer(httpx.ServerConfig{Addr: addr}, httpx.Ops(httpx.Instrument("capacity", metrics, 0, logger, mux), reg, nil), logger)
		if err := srv.Listen(); err != nil {
			return err
		}
		return srv.Serve(cmd.Context())
	}
	return cmd
}
