package snowflake_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func stores(t *testing.T) map[string]func() snowflake.LeaseStore {
	sql := func(url func() string) func() snowflake.LeaseStore {
		return func() snowflake.LeaseStore {
			db, err := sqldb.Open(context.Background(), url(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			s, err := snowflake.NewSQLLeaseStore(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	return map[string]func() snowflake.LeaseStore{
		"SQLite":   sql(func() string { return "sqlite://" + filepath.Join(t.TempDir(), "l.db") }),
		"Postgres": sql(func() string { return testsvc.Postgres(t) }),
		"MySQL":    sql(func() string { return testsvc.MySQL(t) }),
		"Redis": func() snowflake.LeaseStore {
			opts, _ := redis.ParseURL(testsvc.Redis(t))
			c := redis.NewClient(opts)
			t.Cleanup(func() { c.Close() })
			prefix := "scalelab:" + testsvc.Name("leasetest")
			t.Cleanup(func() {
				keys, _ := c.Keys(context.Background(), prefix+":*").Result()
				if len(keys) > 0 {
					c.Del(context.Background(), keys...)
				}
			})
			return snowflake.NewRedisLeaseStore(c, prefix)
		},
	}
}

func TestLease(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := mk()
			genA, _ := snowflake.NewGenerator(snowflake.Config{})
			genB, _ := snowflake.NewGenerator(snowflake.Config{})
			a, err := snowflake.AcquireLease(ctx, store, genA, "owner-a", 3*time.Second, logger)
			if err != nil {
				t.Fatal(err)
			}
			b, err := snowflake.AcquireLease(ctx, store, genB, "owner-b", 3*time.Second, logger)
			if err != nil {
				t.Fatal(err)
			}
			if a.Worker() == b.Worker() {
				t.Fatalf("both servers leased worker %d", a.Worker())
			}
			if genA.Worker() != a.Worker() || genB.Worker() != b.Worker() {
				t.Fatal("generators not pointed at their leases")
			}
			if _, err := genA.Next(); err != nil {
				t.Fatal(err)
			}
			// Someone else holds A's worker now (as after A's lease expired
			// during a long pause): A's renewal finds out and A stops.
			if err := store.Release(ctx, a.Worker(), "owner-a"); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			ok, err := store.Claim(ctx, a.Worker(), "thief", now.UnixMilli(), now.Add(time.Minute).UnixMilli())
			if err != nil || !ok {
				t.Fatalf("thief claim: %v %v", ok, err)
			}
			runCtx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond) // > one renewal period (1s)
			a.Run(runCtx)
			cancel()
			if _, err := genA.Next(); !errors.Is(err, snowflake.ErrLeaseLost) {
				t.Fatalf("after losing the lease: got %v, want ErrLeaseLost", err)
			}
			// B releases on close, and its generator stops at once.
			if err := b.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := genB.Next(); !errors.Is(err, snowflake.ErrLeaseLost) {
				t.Fatalf("after close: %v", err)
			}
			taken, err := store.Taken(ctx, time.Now().UnixMilli())
			if err != nil {
				t.Fatal(err)
			}
			if taken[b.Worker()] {
				t.Fatal("released worker still taken")
			}
		})
	}
}

// When the store stops answering, the generator stops by itself once the
// last renewal's validity (TTL minus the margin) has run out.
func TestLeaseExpiresWithoutRenewal(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "l.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := snowflake.NewSQLLeaseStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	gen, _ := snowflake.NewGenerator(snowflake.Config{})
	if _, err := snowflake.AcquireLease(ctx, store, gen, "solo", time.Second, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Next(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(900 * time.Millisecond) // past TTL - TTL/5 with no Run loop renewing
	if _, err := gen.Next(); !errors.Is(err, snowflake.ErrLeaseLost) {
		t.Fatalf("got %v, want ErrLeaseLost", err)
	}
}
