package cache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
)

// Cache is a byte-valued cache with per-entry TTL.
type Cache interface {
	// Get returns the value and true on a hit; a miss is (nil, false, nil).
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set stores value for ttl (ttl <= 0 means the engine's maximum).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key everywhere it is cached.
	Delete(ctx context.Context, key string) error
	// Ping checks that the engine answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// Options tune an engine. Zero values take the defaults.
type Options struct {
	Namespace string        // key prefix, e.g. "shortener"
	LocalSize int           // in-process entries (default 100,000)
	LocalTTL  time.Duration // in-process TTL in front of Redis (default 5s)
	MaxTTL    time.Duration // cap on any TTL (default 24h)
}

func (o *Options) defaults() {
	if o.LocalSize <= 0 {
		o.LocalSize = 100_000
	}
	if o.LocalTTL <= 0 {
		o.LocalTTL = 5 * time.Second
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = 24 * time.Hour
	}
}

// Open returns the cache engine named by rawURL.
func Open(ctx context.Context, rawURL string, opts Options) (Cache, error) {
	opts.defaults()
	switch {
	case rawURL == "" || rawURL == "mem://" || rawURL == "memory://":
		return NewMemory(opts), nil
	case strings.HasPrefix(rawURL, "redis://"), strings.HasPrefix(rawURL, "rediss://"):
		return openRedis(ctx, rawURL, opts)
	}
	return nil, fmt.Errorf("cache: unsupported cache URL %q: want mem:// or redis://…", rawURL)
}

// Memory is the in-process engine.
type Memory struct {
	c      *otter.Cache[string, memEntry]
	maxTTL time.Duration
}

type memEntry struct {
	data []byte
	ttl  time.Duration
}

var _ Cache = (*Memory)(nil)

// NewMemory builds an in-process cache.
func NewMemory(opts Options) *Memory {
	opts.defaults()
	return &Memory{
		maxTTL: opts.MaxTTL,
		c: otter.Must(&otter.Options[string, memEntry]{
			MaximumSize: opts.LocalSize,
			ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, memEntry]) time.Duration {
				return e.Value.ttl
			}),
		}),
	}
}

func (m *Memory) ttl(d time.Duration) time.Duration {
	if d <= 0 || d > m.maxTTL {
		return m.maxTTL
	}
	return d
}

// Get implements Cache.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	e, ok := m.c.GetIfPresent(key)
	return e.data, ok, nil
}

// Set implements Cache.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	m.c.Set(key, memEntry{data: value, ttl: m.ttl(ttl)})
	return nil
}

// Delete implements Cache.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.c.Invalidate(key)
	return nil
}

// Ping implements Cache.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Cache.
func (m *Memory) Close() error {
	m.c.StopAllGoroutines()
	return nil
}
