// Package hosttest starts a real system server for tests: the production
// wiring (host.ServeOne) on 127.0.0.1:0 with a temporary data directory,
// stopped, and its shutdown checked, when the test ends.
package hosttest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
)

// Start runs the system that build makes until the test ends and returns its
// base URL. Zero Addr and Data in e become 127.0.0.1:0 and a temp dir.
func Start(t testing.TB, e host.Engines, build func(context.Context, *host.Deps) (host.System, error)) string {
	t.Helper()
	if e.Addr == "" {
		e.Addr = "127.0.0.1:0"
	}
	if e.Data == "" {
		e.Data = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, errc := make(chan string, 1), make(chan error, 1)
	go func() {
		errc <- host.ServeOne(ctx, e, slog.New(slog.DiscardHandler), build, func(u string) { ready <- u })
	}()
	select {
	case u := <-ready:
		t.Cleanup(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		return u
	case err := <-errc:
		cancel()
		t.Fatalf("start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("start: timed out after 30s")
	}
	return ""
}
