package ratelimit

import (
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// ClientIP is the default key: the peer's IP address. X-Forwarded-For is
// deliberately ignored; behind a trusted proxy, pass a key function that
// reads it.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Middleware answers 429 with Retry-After (whole seconds, at least 1) and a
// JSON body when key(r) is over its limit. Limiter errors fail open.
func Middleware(l Limiter, key func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := l.Allow(r.Context(), key(r))
		if err != nil {
			slog.WarnContext(r.Context(), "rate limiter unavailable; allowing", "err", err)
		}
		if !d.Allowed {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.RetryAfter.Seconds()))))
			w.Header().Set("X-RateLimit-Remaining", "0")
			httpx.WriteError(w, r, apperr.E(apperr.TooManyRequests,
				"rate limit exceeded; retry in %.1fs", d.RetryAfter.Seconds()))
			return
		}
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
		next.ServeHTTP(w, r)
	})
}
