package host

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/cache"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// Engines are the engine URLs shared by every serve command.
type Engines struct {
	Addr      string
	PublicURL string
	Data      string
	DB        string
	Cache     string
	Broker    string
	Blob      string
	// Namespace prefixes everything shared on an external engine (cache
	// keys, rate-limit keys, streams and queues, worker-ID leases), so that
	// several deployments, or tests, can share one Redis and one broker.
	Namespace string
	// GroupExpiry is passed to the broker (RabbitMQ x-expires); tests set it.
	GroupExpiry time.Duration
	// BrokerPrefetch is how many messages each consumer may hold unsettled
	// (0: the broker package's default); batching consumers want more.
	BrokerPrefetch int
	// BrokerAckWait is how long NATS waits for a consumer's ack before it
	// redelivers (0: the broker package's default, 30 s).
	BrokerAckWait time.Duration
	MaxBody       int64
	Debug         bool
	// AdminToken guards every system's admin operations; empty: the one
	// in DATA/admin-token, made at first start (see the auth package).
	AdminToken string
	// PprofAddr, when set, serves net/http/pprof on its own listener (never
	// on the public one), for profiling under load.
	PprofAddr string
}

// envOr returns $SCALELAB_<NAME> or def.
func envOr(name, def string) string {
	if v := os.Getenv("SCALELAB_" + name); v != "" {
		return v
	}
	return def
}

// BindFlags adds --addr, --data, --db, --cache, --broker (with SCALELAB_*
// environment fallbacks) to fs.
func (e *Engines) BindFlags(fs *pflag.FlagSet, defaultAddr string) {
	fs.StringVar(&e.Addr, "addr", envOr("ADDR", defaultAddr), "listen address host:port ($SCALELAB_ADDR)")
	fs.StringVar(&e.PublicURL, "public-url", envOr("PUBLIC_URL", ""), "URL clients use to reach this server, if not http://ADDR ($SCALELAB_PUBLIC_URL)")
	fs.StringVar(&e.Data, "data", envOr("DATA", "./data"), "directory for embedded engines' files ($SCALELAB_DATA)")
	fs.StringVar(&e.DB, "db", envOr("DB", ""), "SQL store: sqlite://PATH (default DATA/scalelab.db), postgres://…, mysql://… ($SCALELAB_DB)")
	fs.StringVar(&e.Cache, "cache", envOr("CACHE", ""), "cache: mem:// (default) or redis://… ($SCALELAB_CACHE)")
	fs.StringVar(&e.Broker, "broker", envOr("BROKER", ""), "broker: embedded:// (default, NATS JetStream in-process), nats://…, amqp://… ($SCALELAB_BROKER)")
	fs.StringVar(&e.Blob, "blob", envOr("BLOB", ""), "blob store: file://DIR (default DATA/blobs) or s3://BUCKET?endpoint=http://… ($SCALELAB_BLOB)")
	fs.StringVar(&e.AdminToken, "admin-token", envOr("ADMIN_TOKEN", ""), "token of admin operations, sent as Authorization: Bearer TOKEN ($SCALELAB_ADMIN_TOKEN; default: made once in DATA/admin-token)")
	fs.StringVar(&e.Namespace, "namespace", envOr("NAMESPACE", "scalelab"), "prefix of keys, streams and queues on shared engines ($SCALELAB_NAMESPACE)")
	fs.DurationVar(&e.BrokerAckWait, "broker-ack-wait", 30*time.Second, "NATS: how long a crashed consumer's unacked messages wait before redelivery")
	fs.Int64Var(&e.MaxBody, "max-body", httpx.DefaultMaxBody, "request body limit in bytes")
	fs.StringVar(&e.PprofAddr, "pprof-addr", envOr("PPROF_ADDR", ""), "serve /debug/pprof on this separate address, e.g. 127.0.0.1:6060 ($SCALELAB_PPROF_ADDR)")
	fs.BoolVar(&e.Debug, "debug", envOr("DEBUG", "") != "", "log every request ($SCALELAB_DEBUG)")
}

// Deps are the opened engines and shared services a system may use. A system
// opens nothing itself, so that `up` can share one of each between systems.
type Deps struct {
	Engines  Engines
	DB       *sqldb.DB
	Cache    cache.Cache
	Redis    *redis.Client // non-nil only when --cache is redis://
	Broker   broker.Broker
	Blob     blob.Store
	Registry *prometheus.Registry
	Metrics  *httpx.Metrics
	Logger   *slog.Logger
	// Admin guards admin operations (catalog writes, fault controls …).
	Admin *auth.AdminToken
	// BaseURL is where the system's routes are reachable from outside
	// (e.g. http://127.0.0.1:8080/shortener), set per system by the host.
	BaseURL string
}

// Open opens every engine named in e. On error nothing is left open.
func Open(ctx context.Context, e Engines, logger *slog.Logger) (*Deps, error) {
	if e.Namespace == "" {
		e.Namespace = "scalelab"
	}
	d := &Deps{Engines: e, Logger: logger, Registry: prometheus.NewRegistry()}
	d.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.Metrics = httpx.NewMetrics(d.Registry)
	var err error
	var where string
	if d.Admin, where, err = auth.LoadAdminToken(e.AdminToken, e.Data); err != nil {
		return nil, err
	}
	logger.Info("admin operations need the admin token", "from", where)
	if d.DB, err = sqldb.Open(ctx, e.DB, e.Data); err != nil {
		return nil, err
	}
	// go_sql_open_connections, _in_use_connections, _wait_count_total …:
	// a pool's pressure, which the flash sale's lesson reads.
	d.Registry.MustRegister(collectors.NewDBStatsCollector(d.DB.DB, string(d.DB.Dialect)))
	// Each engine is kept only once open: an engine's Open may return a
	// typed nil with its error, which Close must not see.
	c, err := cache.Open(ctx, e.Cache, cache.Options{Namespace: e.Namespace})
	if err != nil {
		d.Close()
		return nil, err
	}
	d.Cache = c
	if r, ok := d.Cache.(*cache.Redis); ok {
		d.Redis = r.Client()
	}
	br, err := broker.Open(ctx, e.Broker, broker.Options{
		DataDir: e.Data, Namespace: e.Namespace, GroupExpiry: e.GroupExpiry, Prefetch: e.BrokerPrefetch, AckWait: e.BrokerAckWait})
	if err != nil {
		d.Close()
		return nil, err
	}
	d.Broker = br
	bs, err := blob.Open(ctx, e.Blob, e.Data)
	if err != nil {
		d.Close()
		return nil, err
	}
	d.Blob = bs
	logger.Info("engines open", "db", d.DB.Where, "cache", describe(e.Cache, "in-process"),
		"broker", describe(e.Broker, "embedded NATS JetStream"), "blob", describe(e.Blob, "local directory"))
	return d, nil
}

func describe(url, def string) string {
	if url == "" {
		return def
	}
	if i := strings.Index(url, "@"); i >= 0 { // hide credentials
		if j := strings.Index(url, "://"); j >= 0 && j < i {
			return url[:j+3] + "…" + url[i:]
		}
	}
	return url
}

// Checks are the engines' readiness checks.
func (d *Deps) Checks() []httpx.Check {
	return []httpx.Check{
		{Name: "db", Fn: d.DB.PingContext},
		{Name: "cache", Fn: d.Cache.Ping},
		{Name: "broker", Fn: d.Broker.Ping},
		{Name: "blob", Fn: d.Blob.Ping},
	}
}

// Close closes the engines: broker first (it may be flushing to disk), then
// cache and database.
func (d *Deps) Close() error {
	var errs []error
	if d.Broker != nil {
		errs = append(errs, d.Broker.Close())
	}
	if d.Blob != nil {
		errs = append(errs, d.Blob.Close())
	}
	if d.Cache != nil {
		errs = append(errs, d.Cache.Close())
	}
	if d.DB != nil {
		errs = append(errs, d.DB.Close())
	}
	return errors.Join(errs...)
}
