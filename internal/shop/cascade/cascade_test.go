package cascade

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/proctest"
)

// TestCascadeShowsTheLesson runs a short experiment: the naive shop's
// stalled checkouts fill its request slots and catalog searches are
// refused; the protected shop's catalog never fails while its checkouts
// fail fast, and it keeps few requests in flight.
func TestCascadeShowsTheLesson(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the shop twice for 20 s")
	}
	cfg := DefaultConfig()
	cfg.Binary = proctest.Binary(t)
	cfg.Out = t.TempDir()
	cfg.Duration, cfg.StallAt, cfg.StallFor = 20*time.Second, 2*time.Second, 4*time.Second // the breaker probes 5 s after it opened; a probe that times out on a starved machine reopens it for 5 s more, and recovery needs 3 s clean after that
	cfg.CatalogRate, cfg.CartRate, cfg.CheckoutRate = 50, 10, 40
	cfg.MaxInFlight = 64
	cfg.Timeout = 8 * time.Second
	cfg.Logf = t.Logf
	results, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	off, on := results[0], results[1]
	if off.Protect || !on.Protect {
		t.Fatal("modes out of order")
	}
	if p := off.Phases["catalog/stall"]; p.ErrPerS == 0 {
		t.Errorf("naive shop: catalog kept working during the stall (%+v); the lesson did not show", p)
	}
	if off.PeakIn < cfg.MaxInFlight {
		t.Errorf("naive shop: peak in flight %d, want the bound %d reached", off.PeakIn, cfg.MaxInFlight)
	}
	if c := on.Classes["catalog"]; c.Errors != 0 {
		t.Errorf("protected shop: %d catalog errors (%v)", c.Errors, c.ByClass)
	}
	// Checkouts that reached payment just before the stall took effect may
	// still succeed in its first second (CI saw 3.7/s under -race, where
	// everything lags); beyond that boundary, checkout must be failing.
	if p, before := on.Phases["checkout/stall"], on.Phases["checkout/before"]; p.ErrPerS == 0 || p.OKPerS > before.OKPerS/4 {
		t.Errorf("protected shop: checkout during the stall %+v (before it %+v), want it failing", p, before)
	}
	if on.PeakIn >= cfg.MaxInFlight/2 {
		t.Errorf("protected shop: peak in flight %d", on.PeakIn)
	}
	if on.RecoveryS < 0 {
		t.Errorf("protected shop: checkout did not recover within the run")
	}
	report, _ := os.ReadFile(filepath.Join(cfg.Out, "report.md"))
	if !strings.Contains(string(report), "What this run shows") || !strings.Contains(string(report), "spread without protection") ||
		strings.Contains(string(report), "too short") {
		t.Errorf("the report does not state the lesson its figures show:\n%s", report)
	}
	for _, f := range []string{"report.md", "results.json", "checkout-p99.svg", "catalog-p99.svg", "shop-goroutines.svg"} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Error(err)
		}
	}
}
