package cache_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/cache"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func engines(t *testing.T) map[string]func(ns string) cache.Cache {
	return map[string]func(ns string) cache.Cache{
		"Memory": func(ns string) cache.Cache { return mustOpen(t, "", ns) },
		"Redis":  func(ns string) cache.Cache { return mustOpen(t, testsvc.Redis(t), ns) },
	}
}

func mustOpen(t *testing.T, url, ns string) cache.Cache {
	t.Helper()
	c, err := cache.Open(context.Background(), url, cache.Options{Namespace: ns, LocalTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestContract(t *testing.T) {
	for name, open := range engines(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c := open(testsvc.Name("cachetest"))
			if _, ok, err := c.Get(ctx, "k"); ok || err != nil {
				t.Fatalf("empty cache: ok=%v err=%v", ok, err)
			}
			if err := c.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
				t.Fatal(err)
			}
			v, ok, err := c.Get(ctx, "k")
			if err != nil || !ok || !bytes.Equal(v, []byte("v1")) {
				t.Fatalf("after set: %q %v %v", v, ok, err)
			}
			if err := c.Set(ctx, "k", []byte("v2"), time.Minute); err != nil {
				t.Fatal(err)
			}
			if v, _, _ := c.Get(ctx, "k"); string(v) != "v2" {
				t.Fatalf("overwrite: got %q", v)
			}
			if err := c.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := c.Get(ctx, "k"); ok {
				t.Fatal("deleted key still present")
			}
			if err := c.Set(ctx, "short", []byte("x"), 50*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			waitGone(t, c, "short", 3*time.Second)
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func waitGone(t *testing.T, c cache.Cache, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, ok, _ := c.Get(context.Background(), key); !ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("key %q still cached after %v", key, within)
}

// Two instances on one Redis: a delete on one is seen by the other long
// before its local TTL would have expired the copy.
func TestRedisCrossInstanceInvalidation(t *testing.T) {
	url := testsvc.Redis(t)
	ns := testsvc.Name("cachetest")
	ctx := context.Background()
	open := func() cache.Cache {
		c, err := cache.Open(ctx, url, cache.Options{Namespace: ns, LocalTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(), open() // Open returns once Redis has confirmed the subscription
	if err := a.Set(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := b.Get(ctx, "k"); !ok || string(v) != "v" {
		t.Fatalf("b sees %q %v", v, ok) // b now holds a local copy for an hour
	}
	if err := a.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, b, "k", 2*time.Second)
	// Namespaces isolate: another namespace never sees this one's keys.
	if err := a.Set(ctx, "iso", []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	other, err := cache.Open(ctx, url, cache.Options{Namespace: ns + "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, ok, _ := other.Get(ctx, "iso"); ok {
		t.Fatal("key leaked across namespaces")
	}
}
