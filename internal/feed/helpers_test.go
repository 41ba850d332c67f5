package feed

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// testConfig is DefaultConfig with small caps (so that floors and
// rebuilds happen in a few posts) and no write limits.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.TimelineCap, cfg.AuthorCap = 10, 10
	cfg.BatchSize = 2
	cfg.WriteLimit, cfg.SignupLimit = "off", "off"
	return cfg
}

// openService builds a feed on the engines named (an empty cache URL is
// the in-process cache; the broker is embedded unless given), closed when
// the test ends.
func openService(t testing.TB, dbURL, cacheURL, brokerURL string, cfg Config) *Service {
	t.Helper()
	return openOn(t, testEngines(t, dbURL, cacheURL, brokerURL), cfg)
}

// testEngines are the engines named, in a namespace of their own whose
// streams an external NATS loses when the test ends (each reserves
// storage there).
func testEngines(t testing.TB, dbURL, cacheURL, brokerURL string) host.Engines {
	ns := testsvc.Name("feed")
	testsvc.CleanupBroker(t, brokerURL, ns)
	return host.Engines{Data: t.TempDir(), DB: dbURL, Cache: cacheURL, Broker: brokerURL,
		Namespace: ns, AdminToken: "test-admin-token-0123456789abcdef", BrokerAckWait: 2 * time.Second}
}

// openOn builds a feed on e (instances given the same e share its
// engines), closed when the test ends.
func openOn(t testing.TB, e host.Engines, cfg Config) *Service {
	t.Helper()
	ctx := context.Background()
	d, err := host.Open(ctx, e, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, d, cfg)
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close(context.Background())
		d.Close()
	})
	return s
}

// settle waits until every fan-out job this instance queued is done.
func settle(t testing.TB, s *Service) {
	t.Helper()
	testsvc.WaitUntil(t, "fan-out to settle", 30*time.Second, func() bool { return s.fanout.outstanding.Load() == 0 })
}

// readAll pages through reader's whole timeline, limit items a page.
func readAll(t testing.TB, s *Service, reader int64, limit int) []int64 {
	t.Helper()
	var out []int64
	cursor := int64(0)
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("timeline paging does not end")
		}
		p, err := s.Timeline(context.Background(), reader, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			out = append(out, it.ID)
		}
		if p.Next == "" {
			return out
		}
		next, err := strconv.ParseInt(p.Next, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		cursor = next
	}
}
