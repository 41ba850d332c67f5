// Package testsvc gives integration tests isolated resources on the
// machine's real services: a fresh PostgreSQL or MariaDB database per test,
// a fresh key prefix on Redis, a fresh namespace of queues/streams on
// RabbitMQ and NATS, each cleaned up when the test ends.
//
// A service that is unreachable skips the test with a message that says
// which one and where it was looked for, except when
// SCALELAB_REQUIRE_SERVICES=1 (as .ci/run sets): then the test fails, so CI
// can never pass by skipping.
//
// Addresses default to the local machine and can be overridden with
// SCALELAB_TEST_POSTGRES, SCALELAB_TEST_MYSQL, SCALELAB_TEST_REDIS,
// SCALELAB_TEST_AMQP and SCALELAB_TEST_NATS.
package testsvc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// Default service URLs on this machine.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQL    = "mysql://root@127.0.0.1:3306/test"
	DefaultRedis    = "redis://127.0.0.1:6379/0"
	DefaultAMQP     = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultNATS     = "nats://127.0.0.1:4222"
)

// SQLEngine is one SQL engine for a table-driven test: URL returns a fresh,
// empty database on it (a file in the test's temp directory for SQLite).
type SQLEngine struct {
	Name string
	URL  func(t testing.TB) string
}

// SQLEngines are the three engines every SQL store must pass on.
var SQLEngines = []SQLEngine{
	{"SQLite", func(t testing.TB) string { return "sqlite://" + filepath.Join(t.TempDir(), "test.db") }},
	{"PostgreSQL", Postgres},
	{"MariaDB", MySQL},
}

// Required reports whether missing services must fail tests rather than skip them.
func Required() bool { return os.Getenv("SCALELAB_REQUIRE_SERVICES") == "1" }

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Unavailable skips t, or fails it when services are required.
func Unavailable(t testing.TB, service, addr string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not reachable at %s: %v", service, addr, err)
	if Required() {
		t.Fatalf("%s (SCALELAB_REQUIRE_SERVICES=1, so this fails instead of skipping)", msg)
	}
	t.Skipf("skipping: %s (set SCALELAB_REQUIRE_SERVICES=1 to make this a failure)", msg)
}

// reach dials the host:port of rawURL.
func reach(t testing.TB, service, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("testsvc: bad %s URL %q: %v", service, rawURL, err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
	if err != nil {
		Unavailable(t, service, u.Host, err)
		return
	}
	conn.Close()
}

// Name returns a fresh lower-case identifier with the given prefix, safe as
// a database, schema, queue or stream name.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Postgres returns the URL of a fresh, empty PostgreSQL database that is
// dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	base := env("SCALELAB_TEST_POSTGRES", DefaultPostgres)
	reach(t, "PostgreSQL", base)
	name := Name("sltest")
	admin := openAdmin(t, "pgx", base, "PostgreSQL")
	mustExec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// MySQL returns the mysql:// URL of a fresh, empty MariaDB/MySQL database
// that is dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	base := env("SCALELAB_TEST_MYSQL", DefaultMySQL)
	reach(t, "MariaDB", base)
	u, _ := url.Parse(base)
	pass, _ := u.User.Password()
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/", u.User.Username(), pass, u.Host)
	name := Name("sltest")
	admin := openAdmin(t, "mysql", dsn, "MariaDB")
	mustExec(t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	})
	u.Path = "/" + name
	return u.String()
}

func openAdmin(t testing.TB, driver, dsn, service string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("testsvc: open %s: %v", service, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		Unavailable(t, service, dsn, err)
	}
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("testsvc: %s: %v", q, err)
	}
}

// Redis returns the Redis URL; callers isolate themselves with a fresh key
// prefix from Name (the cache and rate limiter take one).
func Redis(t testing.TB) string {
	t.Helper()
	u := env("SCALELAB_TEST_REDIS", DefaultRedis)
	reach(t, "Redis", u)
	return u
}

// AMQP returns the RabbitMQ URL; callers isolate with a fresh namespace.
func AMQP(t testing.TB) string {
	t.Helper()
	u := env("SCALELAB_TEST_AMQP", DefaultAMQP)
	reach(t, "RabbitMQ", u)
	return u
}

// NATS returns the external NATS URL; callers isolate with a fresh namespace.
func NATS(t testing.TB) string {
	t.Helper()
	u := env("SCALELAB_TEST_NATS", DefaultNATS)
	reach(t, "NATS", u)
	return u
}

// CleanupBroker removes, when the test ends, what a test left on an external
// broker under namespace ns: on NATS the streams named ns_*; on RabbitMQ the
// queues expire by themselves (broker.Options.GroupExpiry) and the empty
// exchanges are harmless. The embedded broker lives in the test's temp dir.
func CleanupBroker(t testing.TB, rawURL, ns string) {
	t.Helper()
	if !strings.HasPrefix(rawURL, "nats://") {
		return
	}
	t.Cleanup(func() {
		nc, err := nats.Connect(rawURL, nats.Timeout(2*time.Second))
		if err != nil {
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		names := js.StreamNames(ctx)
		var doomed []string
		for n := range names.Name() {
			if strings.HasPrefix(n, ns+"_") {
				doomed = append(doomed, n)
			}
		}
		for _, n := range doomed {
			_ = js.DeleteStream(ctx, n)
		}
	})
}

// CleanupStreams deletes, when the test ends, the RabbitMQ stream queues
// that broker.Subscribe declared for topics under namespace ns (stream
// queues do not expire). Other engines need nothing.
func CleanupStreams(t testing.TB, rawURL, ns string, topics ...string) {
	t.Helper()
	if !strings.HasPrefix(rawURL, "amqp://") && !strings.HasPrefix(rawURL, "amqps://") {
		return
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(rawURL)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, topic := range topics {
			ch, err := conn.Channel()
			if err != nil {
				return
			}
			_, _ = ch.QueueDelete(broker.StreamQueue(ns, topic), false, false, false)
			ch.Close()
		}
	})
}
