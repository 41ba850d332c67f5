package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/cache"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// System is what a system exports to the host.
type System interface {
	Name() string
	Description() string
	// Handler serves the system's routes relative to its mount point.
	Handler() http.Handler
	// Checks are the system's own readiness checks (engines are checked by the host).
	Checks() []httpx.Check
	// Close stops background work and flushes buffers; engines close after.
	Close(ctx context.Context) error
}

// Factory builds a system from its dependencies.
type Factory struct {
	Name        string
	Description string
	New         func(ctx context.Context, deps *Deps) (System, error)
}

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
	if d.Cache, err = cache.Open(ctx, e.Cache, cache.Options{Namespace: e.Namespace}); err != nil {
		d.Close()
		return nil, err
	}
	if r, ok := d.Cache.(*cache.Redis); ok {
		d.Redis = r.Client()
	}
	if d.Broker, err = broker.Open(ctx, e.Broker, broker.Options{
		DataDir: e.Data, Namespace: e.Namespace, GroupExpiry: e.GroupExpiry, Prefetch: e.BrokerPrefetch, AckWait: e.BrokerAckWait}); err != nil {
		d.Close()
		return nil, err
	}
	if d.Blob, err = blob.Open(ctx, e.Blob, e.Data); err != nil {
		d.Close()
		return nil, err
	}
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

// Logger builds the process logger and makes it the slog default, so that
// packages logging through slog's top-level functions share it.
func Logger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	l := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(l)
	return l
}

// BodyLimiter is implemented by a system whose requests may be larger than
// --max-body (uploads); the larger limit then applies to its routes, and
// the system bounds each route itself.
type BodyLimiter interface {
	MaxBody() int64
}

// Instrument wraps a system handler with the shared middleware.
func (d *Deps) Instrument(sys System) http.Handler {
	limit := d.Engines.MaxBody
	if limit <= 0 {
		limit = httpx.DefaultMaxBody
	}
	if bl, ok := sys.(BodyLimiter); ok && bl.MaxBody() > limit {
		limit = bl.MaxBody()
	}
	return httpx.Instrument(sys.Name(), d.Metrics, limit, d.Logger, sys.Handler())
}

// Listen binds the HTTP address before any engine is opened or system
// built: a bad or busy address leaves nothing behind, and a system knows
// its public URL even when the port was ":0". A busy port's error names
// the flag that moves it.
func Listen(e Engines, logger *slog.Logger) (*httpx.Server, error) {
	srv := httpx.NewServer(httpx.ServerConfig{Addr: e.Addr}, nil, logger)
	if err := srv.Listen(); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s is in use (another scalelab?): choose another address with --addr or $SCALELAB_ADDR", e.Addr)
		}
		return nil, fmt.Errorf("cannot listen on %q (--addr, $SCALELAB_ADDR): %w", e.Addr, err)
	}
	return srv, nil
}

// PublicURL is --public-url, or http://ADDR of the bound server.
func (d *Deps) PublicURL(srv *httpx.Server) string {
	if d.Engines.PublicURL != "" {
		return strings.TrimRight(d.Engines.PublicURL, "/")
	}
	return BaseURL(srv.Addr())
}

// Run serves app (already holding every system) behind the operational
// endpoints until ctx ends, then shuts down in order: HTTP drain, systems'
// Close, engines' Close.
func Run(ctx context.Context, d *Deps, srv *httpx.Server, systems []System, app http.Handler) error {
	checks := d.Checks()
	for _, s := range systems {
		for _, c := range s.Checks() {
			checks = append(checks, httpx.Check{Name: s.Name() + "." + c.Name, Fn: c.Fn})
		}
	}
	srv.SetHandler(httpx.Ops(app, d.Registry, checks))
	if d.Engines.PprofAddr != "" {
		go ServePprof(ctx, d.Engines.PprofAddr, d.Logger)
	}
	serveErr := srv.Serve(ctx)
	closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var errs []error
	if serveErr != nil {
		errs = append(errs, serveErr)
	}
	for _, s := range systems {
		if err := s.Close(closeCtx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.Name(), err))
		}
	}
	if err := d.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close engines: %w", err))
	}
	d.Logger.Info("shut down", "errors", len(errs))
	return errors.Join(errs...)
}

// BaseURL returns http://ADDR for a listen address, with 0.0.0.0/[::] shown
// as 127.0.0.1 so that links work from the same machine.
func BaseURL(addr string) string {
	host := addr
	if strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, ":") {
		host = "127.0.0.1" + host[strings.LastIndex(host, ":"):]
	}
	if strings.HasPrefix(host, "[::]:") {
		host = "127.0.0.1" + host[4:]
	}
	return "http://" + host
}

// ServeOne runs one system at the root of its own server: open engines,
// bind, build the system with its public URL, serve until ctx ends. ready,
// if not nil, is called with the public URL once the server is bound.
func ServeOne(ctx context.Context, e Engines, logger *slog.Logger, build func(context.Context, *Deps) (System, error), ready func(url string)) error {
	// Bind first: a bad or busy address must leave nothing behind.
	srv, err := Listen(e, logger)
	if err != nil {
		return err
	}
	d, err := Open(ctx, e, logger)
	if err != nil {
		srv.Close()
		return err
	}
	d.BaseURL = d.PublicURL(srv)
	sys, err := build(ctx, d)
	if err != nil {
		srv.Close()
		d.Close()
		return err
	}
	if ready != nil {
		ready(d.BaseURL)
	}
	return Run(ctx, d, srv, []System{sys}, d.Instrument(sys))
}

// ServePprof serves the profiler on its own address until ctx ends.
func ServePprof(ctx context.Context, addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := httpx.NewServer(httpx.ServerConfig{Addr: addr, WriteTimeout: 5 * time.Minute}, mux, logger)
	if err := srv.Serve(ctx); err != nil {
		logger.Warn("pprof server", "err", err)
	}
}

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

// ServeCommand is the `serve` subcommand of a system: the shared engine
// flags (listening on defaultAddr unless told otherwise), the system's own
// flags, and ServeOne with the factory built after the flags are parsed.
func ServeCommand(short, defaultAddr string, systemFlags func(*pflag.FlagSet), factory func() Factory) *cobra.Command {
	var e Engines
	cmd := &cobra.Command{
		Use:   "serve",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ServeOne(cmd.Context(), e, Logger(cmd.ErrOrStderr(), e.Debug), factory().New, nil)
		},
	}
	e.BindFlags(cmd.Flags(), defaultAddr)
	systemFlags(cmd.Flags())
	return cmd
}
