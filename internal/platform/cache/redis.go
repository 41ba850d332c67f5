package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the shared engine with an in-process layer in front (see doc.go).
type Redis struct {
	client  *redis.Client
	local   *Memory
	prefix  string
	channel string
	opts    Options
	pubsub  *redis.PubSub
	wg      sync.WaitGroup
}

var _ Cache = (*Redis)(nil)

func openRedis(ctx context.Context, rawURL string, opts Options) (*Redis, error) {
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("cache: bad redis URL: %w", err)
	}
	ro.PoolSize = 64
	client := redis.NewClient(ro)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("cache: connect to redis %s: %w", ro.Addr, err)
	}
	return NewRedis(client, opts), nil
}

// NewRedis wraps an existing client (shared with the rate limiter, say).
// Close closes the client.
func NewRedis(client *redis.Client, opts Options) *Redis {
	opts.defaults()
	prefix := "scalelab:"
	if opts.Namespace != "" && opts.Namespace != "scalelab" {
		prefix += opts.Namespace + ":"
	}
	localOpts := opts
	localOpts.MaxTTL = opts.LocalTTL
	r := &Redis{
		client:  client,
		local:   NewMemory(localOpts),
		prefix:  prefix,
		channel: prefix + "invalidate",
		opts:    opts,
	}
	r.pubsub = client.Subscribe(context.Background(), r.channel)
	// Wait for Redis to confirm the subscription: an invalidation published
	// before it would be missed, and the stale copy kept for LocalTTL. A
	// Redis that does not confirm in time is retried by go-redis in the
	// background; the local TTL bounds what that can cost.
	confirmCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, _ = r.pubsub.Receive(confirmCtx)
	cancel()
	r.wg.Add(1)
	go r.invalidations()
	return r
}

// Client returns the underlying Redis client.
func (r *Redis) Client() *redis.Client { return r.client }

// invalidations drops local copies of keys other instances changed. The
// go-redis PubSub reconnects by itself; messages sent while it is away are
// lost, which the local TTL bounds.
func (r *Redis) invalidations() {
	defer r.wg.Done()
	for msg := range r.pubsub.Channel() {
		r.local.c.Invalidate(msg.Payload)
	}
}

// Get implements Cache.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if v, ok, _ := r.local.Get(ctx, key); ok {
		return v, true, nil
	}
	v, err := r.client.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache: redis get: %w", err)
	}
	_ = r.local.Set(ctx, key, v, r.opts.LocalTTL)
	return v, true, nil
}

// Set implements Cache.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if ttl <= 0 || ttl > r.opts.MaxTTL {
		ttl = r.opts.MaxTTL
	}
	pipe := r.client.Pipeline()
	pipe.Set(ctx, r.prefix+key, value, ttl)
	pipe.Publish(ctx, r.channel, key)
	if _, err := pipe.Exec(ctx); err != nil {
		r.local.c.Invalidate(key)
		return fmt.Errorf("cache: redis set: %w", err)
	}
	local := ttl
	if local > r.opts.LocalTTL {
		local = r.opts.LocalTTL
	}
	_ = r.local.Set(ctx, key, value, local)
	return nil
}

// Delete implements Cache.
func (r *Redis) Delete(ctx context.Context, key string) error {
	r.local.c.Invalidate(key)
	pipe := r.client.Pipeline()
	pipe.Del(ctx, r.prefix+key)
	pipe.Publish(ctx, r.channel, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cache: redis delete: %w", err)
	}
	return nil
}

// Ping implements Cache.
func (r *Redis) Ping(ctx context.Context) error { return r.client.Ping(ctx).Err() }

// Close implements Cache.
func (r *Redis) Close() error {
	err := r.pubsub.Close()
	r.wg.Wait()
	r.local.Close()
	if cerr := r.client.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		slog.Debug("cache: close", "err", err)
	}
	return nil
}
