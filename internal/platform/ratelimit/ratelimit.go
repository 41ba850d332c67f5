// Package ratelimit limits requests per client, in-process or shared across
// instances through Redis.
//
// Both engines implement the same rule, GCRA (the generic cell rate
// algorithm, equivalent to a token bucket): a client may make Burst requests
// at once and then one every Period/Count. In-process, each key gets a
// golang.org/x/time/rate token bucket, kept in a bounded otter cache that
// forgets keys idle for longer than a full refill (a forgotten key would be
// full again anyway, so forgetting loses nothing). Shared, go-redis/redis_rate
// runs GCRA as one Lua script per check, so every instance draws from the
// same allowance: one round trip per request.
//
// When Redis is unreachable the limiter fails open (allows, logs, counts):
// a rate limiter must not turn a cache outage into a full outage.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Limit allows Count requests per Period, in bursts of up to Burst.
type Limit struct {
	Count  int
	Period time.Duration
	Burst  int
}

// IsZero reports an unset limit, which allows everything.
func (l Limit) IsZero() bool { return l.Count <= 0 }

func (l Limit) String() string {
	if l.IsZero() {
		return "off"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[l.Period]
	s := fmt.Sprintf("%d/%s", l.Count, unit)
	if l.Burst != l.Count {
		s += fmt.Sprintf(":%d", l.Burst)
	}
	return s
}

// ParseLimit reads "COUNT/UNIT[:BURST]" with UNIT one of s, m, h, e.g.
// "20/m" or "100/s:200"; "" and "off" mean no limit. Burst defaults to Count.
func ParseLimit(s string) (Limit, error) {
	if s == "" || s == "off" || s == "0" {
		return Limit{}, nil
	}
	bad := fmt.Errorf("ratelimit: bad limit %q: want COUNT/UNIT[:BURST] with UNIT s, m or h, e.g. 20/m", s)
	rest, burstStr, hasBurst := strings.Cut(s, ":")
	countStr, unit, ok := strings.Cut(rest, "/")
	if !ok {
		return Limit{}, bad
	}
	count, err := strconv.Atoi(countStr)
	if err != nil || count <= 0 || count > 1_000_000_000 {
		return Limit{}, bad
	}
	period, ok := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if !ok {
		return Limit{}, bad
	}
	l := Limit{Count: count, Period: period, Burst: count}
	if hasBurst {
		if l.Burst, err = strconv.Atoi(burstStr); err != nil || l.Burst <= 0 || l.Burst > 1_000_000_000 {
			return Limit{}, bad
		}
	}
	return l, nil
}

// Decision is the answer for one request.
type Decision struct {
	Allowed    bool
	Remaining  int
	RetryAfter time.Duration // > 0 when denied
}

// Limiter decides whether the client named by key may proceed.
type Limiter interface {
	Allow(ctx context.Context, key string) (Decision, error)
}

// New returns the shared Redis limiter when client is non-nil, the
// in-process one otherwise. prefix isolates systems (and tests) on one Redis.
func New(limit Limit, client *redis.Client, prefix string) Limiter {
	if limit.IsZero() {
		return unlimited{}
	}
	if client != nil {
		return &Redis{limit: limit, rl: redis_rate.NewLimiter(client), prefix: "scalelab:rl:" + prefix + ":"}
	}
	return NewMemory(limit)
}

type unlimited struct{}

func (unlimited) Allow(context.Context, string) (Decision, error) {
	return Decision{Allowed: true, Remaining: math.MaxInt32}, nil
}

// Memory is the in-process limiter.
type Memory struct {
	limit   Limit
	buckets *otter.Cache[string, *rate.Limiter]
	now     func() time.Time
}

// NewMemory builds an in-process limiter remembering up to 100,000 clients.
func NewMemory(limit Limit) *Memory {
	refill := time.Duration(float64(limit.Period) * float64(limit.Burst) / float64(limit.Count))
	return &Memory{
		limit: limit,
		now:   time.Now,
		buckets: otter.Must(&otter.Options[string, *rate.Limiter]{
			MaximumSize:      100_000,
			ExpiryCalculator: otter.ExpiryAccessing[string, *rate.Limiter](refill + time.Second),
		}),
	}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string) (Decision, error) {
	b, _ := m.buckets.ComputeIfAbsent(key, func() (*rate.Limiter, bool) {
		every := rate.Every(m.limit.Period / time.Duration(m.limit.Count))
		return rate.NewLimiter(every, m.limit.Burst), false
	})
	now := m.now()
	r := b.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return Decision{Allowed: false, RetryAfter: delay}, nil
	}
	return Decision{Allowed: true, Remaining: int(b.TokensAt(now))}, nil
}

// Redis is the shared limiter.
type Redis struct {
	limit  Limit
	rl     *redis_rate.Limiter
	prefix string
}

// Allow implements Limiter.
func (r *Redis) Allow(ctx context.Context, key string) (Decision, error) {
	res, err := r.rl.Allow(ctx, r.prefix+key, redis_rate.Limit{
		Rate: r.limit.Count, Period: r.limit.Period, Burst: r.limit.Burst,
	})
	if err != nil {
		return Decision{Allowed: true}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if res.Allowed == 0 {
		return Decision{Allowed: false, RetryAfter: max(res.RetryAfter, time.Millisecond)}, nil
	}
	return Decision{Allowed: true, Remaining: res.Remaining}, nil
}
