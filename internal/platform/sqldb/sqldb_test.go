package sqldb_test

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

//go:embed testdata/migrations
var migrations embed.FS

func TestContract(t *testing.T) {
	for _, e := range testsvc.SQLEngines {
		t.Run(e.Name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, e.URL(t), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			fsys := mustSub(t)
			for i := 0; i < 2; i++ { // applying twice is a no-op
				if err := db.Migrate(ctx, fsys, "contract"); err != nil {
					t.Fatalf("migrate #%d: %v", i+1, err)
				}
			}
			ins := db.Rebind("INSERT INTO things (name, value) VALUES (?, ?)")
			if _, err := db.ExecContext(ctx, ins, "a", 1); err != nil {
				t.Fatal(err)
			}
			_, err = db.ExecContext(ctx, ins, "a", 2)
			if !sqldb.IsUniqueViolation(err) {
				t.Fatalf("duplicate key: got %v, want a unique violation", err)
			}
			// A failed transaction leaves nothing behind.
			boom := errors.New("boom")
			err = db.InTx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, ins, "b", 2); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("InTx: got %v, want boom", err)
			}
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM things").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("rows after rollback: %d, want 1", n)
			}
			// RowsAffected counts matched rows even when the value is unchanged.
			res, err := db.ExecContext(ctx, db.Rebind("UPDATE things SET value = ? WHERE name = ?"), 1, "a")
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := res.RowsAffected(); got != 1 {
				t.Fatalf("RowsAffected for an unchanged row: %d, want 1", got)
			}
		})
	}
}

func mustSub(t *testing.T) fs.FS {
	t.Helper()
	sub, err := fs.Sub(migrations, "testdata")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// SQLite writes of one process queue for the writer in InTx and ExecContext: many
// concurrent writers all commit, none sees "database is locked", and a
// caller whose context ends while it waits gets its context's error at
// once instead of sleeping in SQLite's busy handler.
func TestSQLiteWritersQueue(t *testing.T) {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "q.db"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE n (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO n VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 32)
	for w := range 32 {
		go func() {
			var err error
			for range 20 {
				if w%2 == 0 { // transactions and autocommit statements share the slot
					err = db.InTx(ctx, func(tx *sql.Tx) error {
						_, err := tx.ExecContext(ctx, `UPDATE n SET v = v + 1 WHERE id = 1`)
						return err
					})
				} else {
					_, err = db.ExecContext(ctx, `UPDATE n SET v = v + 1 WHERE id = 1`)
				}
				if err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 32 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT v FROM n`).Scan(&v); err != nil || v != 640 {
		t.Fatalf("v = %d (%v), want 640", v, err)
	}

	holding, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.InTx(ctx, func(*sql.Tx) error { close(holding); <-release; return nil })
	}()
	<-holding
	waitCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err = db.InTx(waitCtx, func(*sql.Tx) error { return nil })
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(begin) > 2*time.Second {
		t.Fatalf("waiting for a held writer: %v after %s, want the context's deadline at once", err, time.Since(begin))
	}
}
