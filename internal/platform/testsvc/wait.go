package testsvc

import (
	"context"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// WaitUntil polls cond every 20 ms until it holds, and fails the test if it
// has not within limit. It is how a test waits on an event it can only
// observe (a row stored, a metric moved, a process ready), never a sleep
// standing in for one.
func WaitUntil(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// OpenDB opens the SQL store at url (an SQLite file lives in the test's
// temporary directory unless the URL names one) and closes it when the
// test ends. A system's tests open their store on it.
func OpenDB(t testing.TB, url string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), url, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
