package ratelimit_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalelab/scalelab/internal/platform/ratelimit"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func TestParseLimit(t *testing.T) {
	good := map[string]ratelimit.Limit{
		"20/m":      {Count: 20, Period: time.Minute, Burst: 20},
		"100/s:200": {Count: 100, Period: time.Second, Burst: 200},
		"1/h":       {Count: 1, Period: time.Hour, Burst: 1},
		"off":       {},
		"":          {},
	}
	for in, want := range good {
		got, err := ratelimit.ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"20", "20/d", "-1/s", "x/s", "10/s:", "10/s:0", "1/s:x", "99999999999/s"} {
		if _, err := ratelimit.ParseLimit(in); err == nil {
			t.Errorf("ParseLimit(%q) accepted", in)
		}
	}
}

func limiters(t *testing.T, l ratelimit.Limit) map[string]func() ratelimit.Limiter {
	return map[string]func() ratelimit.Limiter{
		"Memory": func() ratelimit.Limiter { return ratelimit.New(l, nil, "") },
		"Redis": func() ratelimit.Limiter {
			opts, _ := redis.ParseURL(testsvc.Redis(t))
			c := redis.NewClient(opts)
			t.Cleanup(func() { c.Close() })
			return ratelimit.New(l, c, testsvc.Name("rltest"))
		},
	}
}

func TestBurstThenDeny(t *testing.T) {
	limit := ratelimit.Limit{Count: 5, Period: time.Minute, Burst: 5}
	for name, mk := range limiters(t, limit) {
		t.Run(name, func(t *testing.T) {
			l := mk()
			ctx := context.Background()
			for i := 0; i < 5; i++ {
				d, err := l.Allow(ctx, "client-a")
				if err != nil || !d.Allowed {
					t.Fatalf("request %d: %+v %v", i+1, d, err)
				}
			}
			d, err := l.Allow(ctx, "client-a")
			if err != nil || d.Allowed {
				t.Fatalf("6th request allowed: %+v %v", d, err)
			}
			// 5 per minute: the next token is ~12 s away.
			if d.RetryAfter < 10*time.Second || d.RetryAfter > 13*time.Second {
				t.Fatalf("RetryAfter %v, want about 12s", d.RetryAfter)
			}
			if d, _ := l.Allow(ctx, "client-b"); !d.Allowed {
				t.Fatal("another client was limited")
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	l := ratelimit.New(ratelimit.Limit{Count: 1, Period: time.Hour, Burst: 1}, nil, "")
	h := ratelimit.Middleware(l, ratelimit.ClientIP, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = "10.1.2.3:4567"
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do(); rec.Code != http.StatusNoContent {
		t.Fatalf("first: %d", rec.Code)
	}
	rec := do()
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("second: %d", rec.Code)
	}
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || ra < 3500 || ra > 3600 {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	var body struct{ Error string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
}
