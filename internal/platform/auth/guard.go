package auth

import (
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Limits bound what peers may send to one node.
type Limits struct {
	MaxBody       int64 // bytes per request
	MaxConcurrent int   // requests served at once
}

// Guard serves h to peers within lim. Without a key it also refuses any
// caller that is not on loopback. reg may be nil.
func (p *Peers) Guard(h http.Handler, lim Limits, reg prometheus.Registerer) http.Handler {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scalelab_peer_refused_total",
		Help: "Peer requests refused before reaching the system, by reason (remote, body, busy).",
	}, []string{"reason"})
	if reg != nil {
		// Several guards (one per route limit) share the one counter.
		if err := reg.Register(refused); err != nil {
			are, ok := err.(prometheus.AlreadyRegisteredError)
			if !ok {
				panic(err)
			}
			refused = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	remote, body, busy := refused.WithLabelValues("remote"), refused.WithLabelValues("body"), refused.WithLabelValues("busy")
	slots := make(chan struct{}, max(lim.MaxConcurrent, 1))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.Secure() {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if !isLoopback(host) {
				remote.Inc()
				httpx.WriteError(w, r, apperr.E(apperr.Forbidden, "peers without a cluster key are served on loopback only"))
				return
			}
		}
		if r.ContentLength > lim.MaxBody {
			body.Inc()
			w.Header().Set("Connection", "close") // the unread body must not be parsed as the next request
			httpx.WriteError(w, r, apperr.E(apperr.TooLarge, "peer message is %d bytes; the limit is %d", r.ContentLength, lim.MaxBody))
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			busy.Inc()
			httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "%d peer requests in progress; retry", cap(slots)))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, lim.MaxBody)
		h.ServeHTTP(w, r)
	})
}
