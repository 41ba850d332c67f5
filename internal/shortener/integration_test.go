package shortener

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func openTestStore(t *testing.T, url string) *store {
	t.Helper()
	st, err := openStore(context.Background(), testsvc.OpenDB(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Two instances on shared engines, as in production: a link created on one
// redirects on the other, deletes are seen by both, clicks from both are
// counted once, and (with Redis) the creation limit is shared.
func TestTwoInstances(t *testing.T) {
	combos := []struct {
		name        string
		engines     func(t *testing.T) host.Engines
		sharedLimit bool
	}{
		{"Postgres+Redis+RabbitMQ", func(t *testing.T) host.Engines {
			return host.Engines{DB: testsvc.Postgres(t), Cache: testsvc.Redis(t), Broker: testsvc.AMQP(t)}
		}, true},
		{"MariaDB+NATS", func(t *testing.T) host.Engines {
			return host.Engines{DB: testsvc.MySQL(t), Broker: testsvc.NATS(t)}
		}, false},
	}
	for _, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			e := c.engines(t)
			ns := testsvc.Name("shortenertest")
			// Isolate this test's queues/streams, cache keys and limiter keys.
			e.Namespace, e.GroupExpiry = ns, time.Minute
			testsvc.CleanupBroker(t, e.Broker, ns)
			cfg := testConfig()
			if c.sharedLimit {
				cfg.CreateLimit = "4/h"
			}
			a := startInstance(t, e, cfg, nil)
			b := startInstance(t, e, cfg, nil)

			// Created on A, redirects on B.
			r := createLink(t, a.url, `{"url":"https://example.com/shared"}`)
			code, token := r.str("code"), r.str("delete_token")
			if red := do(t, "GET", b.url+"/"+code, ""); red.status != http.StatusFound || red.header.Get("Location") != "https://example.com/shared" {
				t.Fatalf("redirect on B: %d %q", red.status, red.header.Get("Location"))
			}
			// An alias B has negatively cached becomes visible once A creates it
			// (Redis: through invalidation; in-process caches: after the
			// negative TTL, which this test does not wait for).
			if c.sharedLimit {
				mustStatus(t, do(t, "GET", b.url+"/made-on-a", ""), 404, "alias before creation")
				createLink(t, a.url, `{"url":"https://example.com/a","alias":"made-on-a"}`)
				testsvc.WaitUntil(t, "B sees A's new alias", 2*time.Second, func() bool {
					return do(t, "GET", b.url+"/made-on-a", "").status == http.StatusFound
				})
			}

			// Clicks on both instances are counted once each.
			for i := 0; i < 10; i++ {
				do(t, "GET", a.url+"/"+code, "")
				do(t, "GET", b.url+"/"+code, "")
			}
			testsvc.WaitUntil(t, "20 clicks counted", 10*time.Second, func() bool {
				r := do(t, "GET", b.url+"/api/v1/links/"+code, "")
				return r.body["clicks"] == float64(21)
			})

			// Deleted on B: A stops redirecting (Redis invalidation; without
			// Redis the in-process cache of A may still hold it for CacheTTL,
			// so only the API is checked there).
			if r := do(t, "DELETE", b.url+"/api/v1/links/"+code, "", "Authorization", "Bearer "+token); r.status != 204 {
				t.Fatalf("delete on B: %d", r.status)
			}
			mustStatus(t, do(t, "GET", a.url+"/api/v1/links/"+code, ""), 404, "link on A after delete on B")
			if c.sharedLimit {
				testsvc.WaitUntil(t, "A stops redirecting", 2*time.Second, func() bool {
					return do(t, "GET", a.url+"/"+code, "").status == http.StatusNotFound
				})
				// Two creates so far (both on A); the limit is 4 per hour across
				// both instances: 2 more anywhere, then 429 everywhere.
				createLink(t, b.url, `{"url":"https://example.com/3"}`)
				createLink(t, a.url, `{"url":"https://example.com/4"}`)
				mustStatus(t, do(t, "POST", b.url+"/api/v1/links", `{"url":"https://example.com/5"}`), 429, "5th create on B")
				mustStatus(t, do(t, "POST", a.url+"/api/v1/links", `{"url":"https://example.com/6"}`), 429, "6th create on A")
			}
		})
	}
}
