// Package balance holds the load balancer's decisions, without IO: which
// backend a request goes to. A Policy is given the healthy backends of a
// pool — their effective weights, requests in flight and latency costs,
// as the pool measured them a moment ago — and the request's hash key,
// and picks one. Health, retries and the proxying itself are elsewhere;
// this is the part that is tested exhaustively, and the part the
// lb-algorithms lesson compares.
//
// The policies, and when each wins:
//
//   - round-robin: each backend in turn. Right when backends and requests
//     are alike; blind to a slow backend, which keeps its full share.
//   - weighted (nginx's smooth weighted round robin): each backend in
//     proportion to its weight, interleaved (weights 5,1,1 give
//     a a b a c a a, not a a a a a b c), so a heavy backend is never hit
//     by a burst of its whole share.
//   - least-conn: the fewest requests in flight per unit of weight. Adapts
//     to slow backends (their requests pile up) and to long requests.
//     Ties rotate: HAProxy's leastconn sent bursts that arrive before any
//     request completes to the first of the tied backends (haproxy #1099);
//     here a burst spreads evenly.
//   - ip-hash: the client's address picks the backend by weighted
//     rendezvous hashing, so a client sticks to one backend, and removing
//     a backend moves only its own clients.
//   - consistent: consistent hashing with bounded loads (Mirrokni, Thorup
//     and Zadimoghaddam 2016, as in HAProxy's hash-balance-factor): a key
//     sticks to its backend on a ring of virtual nodes unless that
//     backend already has more than its bound (1.25 × the mean in
//     flight), when it spills to the next on the ring. Sticky sessions
//     that cannot melt one backend.
//   - random: a uniformly random backend, weighted. The baseline.
//   - p2c (power of two choices): two random backends, the one with fewer
//     requests in flight per weight. Nearly least-conn's balance without
//     its herd behaviour when many balancers share stale counts.
//   - peak-ewma (Finagle, Linkerd): p2c on a cost = latency estimate ×
//     (in flight + 1), where the estimate jumps to a slower response at
//     once and decays towards faster ones; it steers away from a
//     degraded backend within a few requests. The estimate also decays
//     with time when no response comes (PeakEWMA.Cost), so a backend that
//     was slow once is tried again: a least-time policy that only learns
//     from responses starves a backend it stopped sending to (traefik
//     #12306).
//
// Slow start (SlowStart) scales a returning backend's weight from a floor
// to full over a window. The floor is never zero: Envoy's least-request
// with slow start could send a new endpoint nothing at all (envoy
// #19437), because its weight started at zero and every comparison lost.
package balance
