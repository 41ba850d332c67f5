package httpx

import (
	"net/http"
	"sync/atomic"
)

// RoundRobin spreads requests over handlers in turn: how an in-process
// cluster's shared URL reaches "any node", as a client behind a simple
// load balancer would.
func RoundRobin(handlers ...http.Handler) http.Handler {
	var next atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers[(next.Add(1)-1)%uint64(len(handlers))].ServeHTTP(w, r)
	})
}
