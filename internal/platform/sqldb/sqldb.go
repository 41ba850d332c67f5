package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names a SQL engine family.
type Dialect string

// The supported dialects; their names are also the migration directory names.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
	MySQL    Dialect = "mysql"
)

// DB is an open database and the dialect it speaks.
type DB struct {
	*sql.DB
	Dialect Dialect
	// Where is a human-readable location without credentials, for logs.
	Where string
	// writer is SQLite's one write slot, taken by InTx before BEGIN and by
	// ExecContext around an autocommit statement: see takeWriter.
	writer chan struct{}
	// writes counts committed transactions (InTx) and autocommit
	// statements (ExecContext): the commits this process asked for.
	writes atomic.Uint64
}

// Writes is how many write transactions this DB committed: InTx
// transactions and autocommit ExecContext statements. A system's tests
// use it to hold a request to its number of commits.
func (db *DB) Writes() uint64 { return db.writes.Load() }

// Open connects to the database named by rawURL. An empty URL opens the
// embedded SQLite file under dataDir.
func Open(ctx context.Context, rawURL, dataDir string) (*DB, error) {
	db, err := open(rawURL, dataDir)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqldb: connect to %s: %w", db.Where, err)
	}
	return db, nil
}

func open(rawURL, dataDir string) (*DB, error) {
	switch {
	case rawURL == "" || strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//")
		if path == "" {
			if dataDir == "" {
				dataDir = "data"
			}
			path = filepath.Join(dataDir, "scalelab.db")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("sqldb: create data directory: %w", err)
		}
		dsn := "file:" + path + "?_txlock=immediate" +
			"&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
			"&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
		sdb, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("sqldb: open sqlite %s: %w", path, err)
		}
		// SQLite has one writer at a time; a small pool keeps readers
		// concurrent (WAL) without piling up writers on the busy timeout.
		sdb.SetMaxOpenConns(8)
		sdb.SetMaxIdleConns(8)
		return &DB{DB: sdb, Dialect: SQLite, Where: "sqlite:" + path, writer: make(chan struct{}, 1)}, nil

	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		sdb, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, fmt.Errorf("sqldb: open postgres: %w", err)
		}
		sdb.SetMaxOpenConns(32)
		sdb.SetMaxIdleConns(32)
		sdb.SetConnMaxIdleTime(5 * time.Minute)
		return &DB{DB: sdb, Dialect: Postgres, Where: redact(rawURL)}, nil

	case strings.HasPrefix(rawURL, "mysql://"):
		dsn, err := mysqlDSN(rawURL)
		if err != nil {
			return nil, err
		}
		sdb, err := sql.Open("mysql", dsn)
		if err != nil {
			return nil, fmt.Errorf("sqldb: open mysql: %w", err)
		}
		sdb.SetMaxOpenConns(32)
		sdb.SetMaxIdleConns(32)
		sdb.SetConnMaxLifetime(30 * time.Minute)
		return &DB{DB: sdb, Dialect: MySQL, Where: redact(rawURL)}, nil
	}
	return nil, fmt.Errorf("sqldb: unsupported database URL %q: want sqlite://PATH, postgres://… or mysql://…", redact(rawURL))
}

// mysqlDSN turns mysql://user:pass@host:port/db?x=y into the driver's DSN.
func mysqlDSN(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("sqldb: bad mysql URL: %w", err)
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Host + ":3306"
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" {
		return "", errors.New("sqldb: mysql URL needs a database name: mysql://user@host:3306/DB")
	}
	cfg.ParseTime = true
	cfg.ClientFoundRows = true
	cfg.MultiStatements = true // goose migrations may hold several statements
	cfg.Params = map[string]string{}
	for k, v := range u.Query() {
		cfg.Params[k] = v[0]
	}
	return cfg.FormatDSN(), nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxx")
		}
	}
	return u.String()
}

// Rebind rewrites '?' placeholders as $1, $2 … for PostgreSQL and returns the
// query unchanged for the other dialects. Question marks inside single-quoted
// literals are left alone.
func (db *DB) Rebind(query string) string {
	if db.Dialect != Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n, quoted := 0, false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
			b.WriteByte(c)
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Migrate applies the migrations in fsys/migrations/<dialect>/ that are not
// yet applied, recording them in the table goose_<system>. fsys is usually
// a system's `//go:embed migrations`.
func (db *DB) Migrate(ctx context.Context, fsys fs.FS, system string) error {
	sub, err := fs.Sub(fsys, "migrations/"+string(db.Dialect))
	if err != nil {
		return fmt.Errorf("sqldb: migrations for %s/%s: %w", system, db.Dialect, err)
	}
	dialect := map[Dialect]goose.Dialect{
		SQLite: goose.DialectSQLite3, Postgres: goose.DialectPostgres, MySQL: goose.DialectMySQL,
	}[db.Dialect]
	p, err := goose.NewProvider(dialect, db.DB, sub, goose.WithTableName("goose_"+system))
	if err != nil {
		return fmt.Errorf("sqldb: migrations for %s: %w", system, err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqldb: migrate %s on %s: %w", system, db.Where, err)
	}
	return nil
}

// IsUniqueViolation reports whether err is a primary-key or unique-constraint
// violation on any of the three engines.
func IsUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1062
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// takeWriter queues this process's SQLite writes for the one write lock
// here rather than in SQLite: a writer that finds the lock taken goes to
// SQLite's busy handler, which sleeps (1, 2, 5, 10 … 100 ms) and retries,
// so under concurrent writes most of a write's latency was that sleep, not
// work — bench/shop.sh measured it. Waiting on a channel wakes the next
// writer the moment the previous one commits. It returns the release
// function (a no-op on the server engines).
func (db *DB) takeWriter(ctx context.Context) (func(), error) {
	if db.writer == nil {
		return func() {}, nil
	}
	select {
	case db.writer <- struct{}{}:
		return func() { <-db.writer }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("sqldb: waiting for the SQLite writer: %w", ctx.Err())
	}
}

// ExecContext runs a statement outside a transaction; on SQLite it holds
// the write slot meanwhile (see takeWriter). Inside InTx, use the *sql.Tx.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	release, err := db.takeWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := db.DB.ExecContext(ctx, query, args...)
	if err == nil {
		db.writes.Add(1)
	}
	return res, err
}

// InTx runs fn in a transaction, committing when it returns nil. On SQLite
// it holds the write slot for the whole transaction (see takeWriter).
func (db *DB) InTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	release, err := db.takeWriter(ctx)
	if err != nil {
		return err
	}
	defer release()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	db.writes.Add(1)
	return nil
}
