// Package lb is an L7 load balancer: `scalelab lb serve` proxies HTTP/1.1
// and WebSocket traffic to a pool of backends, the way HAProxy, nginx or
// Envoy do for their users, with every decision written out where it can
// be read and tested.
//
// A request's path:
//
//  1. The client port (--addr) takes it, with the platform's server limits
//     (timeouts, connection caps); a body over --max-body is a 413.
//  2. The pool offers the policy the backends that may take traffic: up
//     by their active checks, not ejected by outlier detection, not
//     draining — each with its weight scaled by slow start, its requests
//     in flight and its peak-EWMA latency (package balance).
//  3. The policy picks one (round-robin, weighted, least-conn, ip-hash,
//     consistent, random, p2c, peak-ewma; see balance's doc for when each
//     wins). The hashing policies hash the client's address, or a header
//     (--hash-header) for sticky sessions.
//  4. httputil.ReverseProxy sends it over that backend's keep-alive pool,
//     with X-Forwarded-For/-Host/-Proto and RFC 7239 Forwarded, and
//     streams the answer back (a WebSocket upgrade included: the
//     connection's deadlines are lifted, the answer timeout does not
//     apply). The request counts in flight on its backend until the
//     answer's body is closed, so least-conn sees long streams. Plain
//     HTTP/1.1 requests go over directTransport: one connection per
//     exchange, written and read on the request's own goroutine (see
//     direct.go for the profile that called for it); upgrades and https
//     backends over http.Transport.
//  5. A failure before an answer (refused, reset, timed out) or a 502/503
//     of an idempotent request (GET, HEAD, OPTIONS, PUT, DELETE with a
//     body that can be sent again) is retried on a backend not yet tried,
//     at most --retries times and within a retry budget (20 % of recent
//     requests plus 10 a second): a POST is never sent twice, and retries
//     cannot multiply an outage's load.
//  6. Every answer feeds passive outlier detection (package health):
//     consecutive gateway failures eject a backend for a time that grows
//     with each ejection, at most half the pool at once.
//
// The admin port (--admin-addr, kept off the client port) serves the
// backends API — list with state, in flight, latency and requests; add,
// remove, drain, change weight, at runtime, without touching requests in
// flight — to holders of the admin token, and /healthz, /readyz (ready
// while a backend may take traffic) and /metrics.
//
// --mode tcp is the L4 mode (tcp.go): connections, not requests, are
// balanced, and the bytes copied both ways.
//
// What it is not: HTTP/2 to clients, TLS termination. Written by hand
// because the balancing, health and retry decisions are the subject; the
// request handling is the standard library's ReverseProxy, and only the
// backend connection (directTransport) is the balancer's own, because a
// profile showed the general transport's goroutine hand-offs as the
// largest cost left. The collector runs at GOGC 400 (--gc-percent): the
// live heap is small and the allocation rate per request high.
package lb
