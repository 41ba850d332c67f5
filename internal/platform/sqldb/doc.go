// Package sqldb opens scalelab's SQL store on one of three engines, chosen by
// URL, and applies each system's schema migrations at start.
//
//	""  or sqlite://PATH       SQLite file (default: DATA/scalelab.db), pure-Go driver, no cgo
//	postgres://… postgresql://…  PostgreSQL through pgx
//	mysql://user:pass@host:port/db  MariaDB or MySQL through go-sql-driver/mysql
//
// The result is a *DB: a *sql.DB plus its Dialect. Systems write their
// queries with '?' placeholders and pass them through Rebind, which turns
// them into $1, $2 … for PostgreSQL; the few statements that differ by
// engine (upserts, mostly) switch on Dialect in the system's own store code,
// in plain sight.
//
// Migrations use goose. Each system ships an embed.FS with one directory per
// dialect (sqlite/, postgres/, mysql/) and its own goose version table
// (goose_<system>), so systems sharing one database migrate independently.
// One directory per dialect costs a little repetition and buys exact types:
// MariaDB needs a binary collation for case-sensitive short codes, PostgreSQL
// and SQLite do not.
//
// SQLite is opened in WAL mode with a busy timeout and IMMEDIATE
// transactions, so concurrent writers queue rather than fail with
// SQLITE_BUSY; MySQL is opened with clientFoundRows so that RowsAffected
// counts matched rows on every engine (an UPDATE that sets the same value
// still reports 1), which lease and compare-and-set code relies on.
package sqldb
