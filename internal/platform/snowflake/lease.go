package snowflake

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// LeaseStore records which worker IDs are claimed, by whom, until when.
// All times are unix milliseconds from the claimer's clock.
type LeaseStore interface {
	// Taken returns the worker IDs whose leases have not expired at now.
	Taken(ctx context.Context, now int64) (map[int]bool, error)
	// Claim takes worker if it is free (never claimed, or expired at now).
	Claim(ctx context.Context, worker int, owner string, now, until int64) (bool, error)
	// Renew extends owner's lease on worker; false if owner no longer holds it.
	Renew(ctx context.Context, worker int, owner string, until int64) (bool, error)
	// Release gives worker back if owner holds it.
	Release(ctx context.Context, worker int, owner string) error
}

// ErrNoFreeWorker means all 1,024 worker IDs are leased.
var ErrNoFreeWorker = errors.New("snowflake: no free worker id (all 1024 are leased)")

// Lease keeps a generator's worker ID claimed. Create it with AcquireLease,
// run Run in a goroutine, and Close it at shutdown.
type Lease struct {
	store  LeaseStore
	gen    *Generator
	owner  string
	ttl    time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu     sync.Mutex
	worker int
	held   bool
}

// AcquireLease claims the lowest free worker ID for owner (a name unique to
// this process, such as host:pid:random) and points gen at it.
func AcquireLease(ctx context.Context, store LeaseStore, gen *Generator, owner string, ttl time.Duration, logger *slog.Logger) (*Lease, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("snowflake: lease ttl %v is below 1s", ttl)
	}
	l := &Lease{store: store, gen: gen, owner: owner, ttl: ttl, now: gen.now, logger: logger}
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// margin is how long before the stored expiry we stop issuing, to absorb
// clock differences between servers and the renewal's own latency.
func (l *Lease) margin() time.Duration { return l.ttl / 5 }

func (l *Lease) acquire(ctx context.Context) error {
	start := l.now()
	now, until := start.UnixMilli(), start.Add(l.ttl).UnixMilli()
	taken, err := l.store.Taken(ctx, now)
	if err != nil {
		return fmt.Errorf("snowflake: lease: %w", err)
	}
	for w := 0; w <= MaxWorker; w++ {
		if taken[w] {
			continue
		}
		ok, err := l.store.Claim(ctx, w, l.owner, now, until)
		if err != nil {
			return fmt.Errorf("snowflake: lease: claim worker %d: %w", w, err)
		}
		if ok {
			l.mu.Lock()
			l.worker, l.held = w, true
			l.mu.Unlock()
			l.gen.setValidity(w, start.Add(l.ttl-l.margin()).UnixMilli())
			l.logger.Info("snowflake: worker id leased", "worker", w, "owner", l.owner, "ttl", l.ttl)
			return nil
		}
	}
	return ErrNoFreeWorker
}

// Worker returns the leased worker ID.
func (l *Lease) Worker() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.worker
}

// Run renews the lease every TTL/3 until ctx ends. When a renewal reports
// the lease gone, the generator is stopped at once and Run tries to claim a
// worker ID again; when renewals merely fail (store down), the generator
// stops by itself when the last good renewal's validity runs out.
func (l *Lease) Run(ctx context.Context) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.renew(ctx)
	}
}

func (l *Lease) renew(ctx context.Context) {
	l.mu.Lock()
	worker, held := l.worker, l.held
	l.mu.Unlock()
	if !held {
		if err := l.acquire(ctx); err != nil {
			l.logger.Warn("snowflake: re-acquiring a worker id failed", "err", err)
		}
		return
	}
	start := l.now()
	rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
	ok, err := l.store.Renew(rctx, worker, l.owner, start.Add(l.ttl).UnixMilli())
	cancel()
	switch {
	case err != nil:
		l.logger.Warn("snowflake: lease renewal failed; ids stop when the lease runs out", "worker", worker, "err", err)
	case !ok:
		l.gen.setValidity(worker, 0)
		l.mu.Lock()
		l.held = false
		l.mu.Unlock()
		l.logger.Error("snowflake: worker id lease lost; stopped issuing ids", "worker", worker)
	default:
		l.gen.setValidity(worker, start.Add(l.ttl-l.margin()).UnixMilli())
	}
}

// Close stops issuing and releases the worker ID for others.
func (l *Lease) Close(ctx context.Context) error {
	l.mu.Lock()
	worker, held := l.worker, l.held
	l.held = false
	l.mu.Unlock()
	l.gen.setValidity(worker, 0)
	if !held {
		return nil
	}
	return l.store.Release(ctx, worker, l.owner)
}

//go:embed migrations
var migrations embed.FS

// SQLLeaseStore keeps leases in the snowflake_workers table.
type SQLLeaseStore struct{ db *sqldb.DB }

// NewSQLLeaseStore migrates the lease table and returns the store.
func NewSQLLeaseStore(ctx context.Context, db *sqldb.DB) (*SQLLeaseStore, error) {
	if err := db.Migrate(ctx, migrations, "snowflake"); err != nil {
		return nil, err
	}
	return &SQLLeaseStore{db: db}, nil
}

// Taken implements LeaseStore.
func (s *SQLLeaseStore) Taken(ctx context.Context, now int64) (map[int]bool, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind("SELECT worker_id FROM snowflake_workers WHERE expires_at > ?"), now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	taken := map[int]bool{}
	for rows.Next() {
		var w int
		if err := rows.Scan(&w); err != nil {
			return nil, err
		}
		taken[w] = true
	}
	return taken, rows.Err()
}

// Claim implements LeaseStore: an expired row is taken over with a
// conditional UPDATE, a missing one with an INSERT; each is atomic, and a
// lost race shows as zero rows or a unique violation.
func (s *SQLLeaseStore) Claim(ctx context.Context, worker int, owner string, now, until int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(
		"UPDATE snowflake_workers SET owner = ?, expires_at = ? WHERE worker_id = ? AND expires_at <= ?"),
		owner, until, worker, now)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	_, err = s.db.ExecContext(ctx, s.db.Rebind(
		"INSERT INTO snowflake_workers (worker_id, owner, expires_at) VALUES (?, ?, ?)"), worker, owner, until)
	if sqldb.IsUniqueViolation(err) {
		return false, nil
	}
	return err == nil, err
}

// Renew implements LeaseStore.
func (s *SQLLeaseStore) Renew(ctx context.Context, worker int, owner string, until int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(
		"UPDATE snowflake_workers SET expires_at = ? WHERE worker_id = ? AND owner = ?"), until, worker, owner)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Release implements LeaseStore.
func (s *SQLLeaseStore) Release(ctx context.Context, worker int, owner string) error {
	_, err := s.db.ExecContext(ctx, s.db.Rebind(
		"DELETE FROM snowflake_workers WHERE worker_id = ? AND owner = ?"), worker, owner)
	return err
}

// RedisLeaseStore keeps leases as keys PREFIX:worker:N holding the owner,
// with the lease TTL as the key's expiry.
type RedisLeaseStore struct {
	client *redis.Client
	prefix string
}

// NewRedisLeaseStore returns a store under the key prefix (default "scalelab:snowflake").
func NewRedisLeaseStore(client *redis.Client, prefix string) *RedisLeaseStore {
	if prefix == "" {
		prefix = "scalelab:snowflake"
	}
	return &RedisLeaseStore{client: client, prefix: prefix}
}

func (s *RedisLeaseStore) key(w int) string { return s.prefix + ":worker:" + strconv.Itoa(w) }

// Taken implements LeaseStore with one MGET of all 1,024 keys.
func (s *RedisLeaseStore) Taken(ctx context.Context, _ int64) (map[int]bool, error) {
	keys := make([]string, MaxWorker+1)
	for w := range keys {
		keys[w] = s.key(w)
	}
	vals, err := s.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	taken := map[int]bool{}
	for w, v := range vals {
		if v != nil {
			taken[w] = true
		}
	}
	return taken, nil
}

// Claim implements LeaseStore with SET NX PX.
func (s *RedisLeaseStore) Claim(ctx context.Context, worker int, owner string, now, until int64) (bool, error) {
	return s.client.SetNX(ctx, s.key(worker), owner, time.Duration(until-now)*time.Millisecond).Result()
}

var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIREAT", KEYS[1], ARGV[2])
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Renew implements LeaseStore: extend only if we still own the key.
func (s *RedisLeaseStore) Renew(ctx context.Context, worker int, owner string, until int64) (bool, error) {
	n, err := renewScript.Run(ctx, s.client, []string{s.key(worker)}, owner, until).Int()
	return n == 1, err
}

// Release implements LeaseStore.
func (s *RedisLeaseStore) Release(ctx context.Context, worker int, owner string) error {
	return releaseScript.Run(ctx, s.client, []string{s.key(worker)}, owner).Err()
}

// OpenLeaseStore picks where worker-ID leases live: "redis" needs a Redis
// client (keys under scalelab:NAMESPACE:snowflake); "sql" uses the SQL
// store; "auto" prefers Redis when there is one.
func OpenLeaseStore(ctx context.Context, kind, namespace string, db *sqldb.DB, rc *redis.Client) (LeaseStore, error) {
	switch {
	case kind == "redis" || (kind == "auto" && rc != nil):
		if rc == nil {
			return nil, errors.New("snowflake: lease store redis needs --cache redis://…")
		}
		return NewRedisLeaseStore(rc, "scalelab:"+namespace+":snowflake"), nil
	case kind == "sql" || kind == "auto":
		return NewSQLLeaseStore(ctx, db)
	}
	return nil, fmt.Errorf("snowflake: lease store %q: want auto, sql or redis", kind)
}

// Owner names this process in lease records: system, host, pid and a random tag.
func Owner(system string) string {
	hostname, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%s:%d:%s", system, hostname, os.Getpid(), hex.EncodeToString(b))
}

// LeasedGenerator is a generator plus the lease that keeps its worker ID,
// renewed in the background until Close. With a fixed worker it is just the
// generator.
type LeasedGenerator struct {
	*Generator
	lease  *Lease
	cancel context.CancelFunc
	done   chan struct{}
}

// LeaseOptions say where and how a worker ID is leased.
type LeaseOptions struct {
	Store     string // auto, sql or redis
	Namespace string // Redis key namespace
	TTL       time.Duration
	DB        *sqldb.DB
	Redis     *redis.Client
	Owner     string
	Logger    *slog.Logger
}

// NewLeasedGenerator returns a generator for worker (0–1023), or, when
// worker is -1, one whose worker ID is leased and renewed as lo says.
func NewLeasedGenerator(ctx context.Context, worker int, cfg Config, lo LeaseOptions) (*LeasedGenerator, error) {
	if worker < -1 || worker > MaxWorker {
		return nil, fmt.Errorf("snowflake: worker id %d out of range 0–%d (or -1 to lease one)", worker, MaxWorker)
	}
	cfg.Worker = max(worker, 0)
	gen, err := NewGenerator(cfg)
	if err != nil {
		return nil, err
	}
	lg := &LeasedGenerator{Generator: gen}
	if worker >= 0 {
		return lg, nil
	}
	store, err := OpenLeaseStore(ctx, lo.Store, lo.Namespace, lo.DB, lo.Redis)
	if err != nil {
		return nil, err
	}
	if lg.lease, err = AcquireLease(ctx, store, gen, lo.Owner, lo.TTL, lo.Logger); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	lg.cancel, lg.done = cancel, make(chan struct{})
	go func() {
		defer close(lg.done)
		lg.lease.Run(runCtx)
	}()
	return lg, nil
}

// Close stops renewing and releases the worker ID.
func (lg *LeasedGenerator) Close(ctx context.Context) error {
	if lg.lease == nil {
		return nil
	}
	lg.cancel()
	<-lg.done
	return lg.lease.Close(ctx)
}
