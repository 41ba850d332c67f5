package host

import (
	"context"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// WorkerConfig chooses a system's Snowflake worker ID: fixed, or leased.
type WorkerConfig struct {
	ID       int           // 0–1023; -1 leases a free one
	Store    string        // where leases live: auto, sql, redis
	LeaseTTL time.Duration // renewed every TTL/3
}

// DefaultWorkerConfig leases a worker ID with a 10 s TTL.
func DefaultWorkerConfig() WorkerConfig {
	return WorkerConfig{ID: -1, Store: "auto", LeaseTTL: 10 * time.Second}
}

// BindFlags adds --worker-id, --lease-store and --lease-ttl.
func (w *WorkerConfig) BindFlags(fs *pflag.FlagSet) {
	fs.IntVar(&w.ID, "worker-id", w.ID, "Snowflake worker ID 0–1023; -1 leases a free one")
	fs.StringVar(&w.Store, "lease-store", w.Store, "where worker-ID leases live: auto (Redis if --cache is redis://, else SQL), sql, redis")
	fs.DurationVar(&w.LeaseTTL, "lease-ttl", w.LeaseTTL, "worker-ID lease TTL (renewed every TTL/3)")
}

// NewGenerator returns the system's Snowflake generator, leasing its worker
// ID from these engines when w.ID is -1.
func (d *Deps) NewGenerator(ctx context.Context, system string, w WorkerConfig, cfg snowflake.Config) (*snowflake.LeasedGenerator, error) {
	return snowflake.NewLeasedGenerator(ctx, w.ID, cfg, snowflake.LeaseOptions{
		Store: w.Store, Namespace: d.Engines.Namespace, TTL: w.LeaseTTL,
		DB: d.DB, Redis: d.Redis, Owner: snowflake.Owner(system), Logger: d.Logger,
	})
}
