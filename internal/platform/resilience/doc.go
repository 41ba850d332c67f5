// Package resilience protects a service from its dependencies: one
// Dependency per downstream service (payment, inventory, the broker) runs
// every call under a timeout, retries with backoff and jitter (idempotent
// calls only), a circuit breaker and a bulkhead, built on failsafe-go.
//
// The policies nest, outermost first:
//
//		retry → circuit breaker → bulkhead → timeout → the call
//
//	  - The timeout bounds each attempt, so one stalled dependency cannot
//	    hold a request, its goroutine and its connection for ever. The call
//	    receives a context with the attempt's deadline and must honour it.
//	  - The bulkhead bounds the calls in flight (waiting briefly for a slot):
//	    when a dependency slows down, at most MaxConcurrent goroutines wait on
//	    it and the rest of the service keeps its threads, memory and
//	    connections. A full bulkhead is not a failure of the dependency and
//	    does not count against the breaker.
//	  - The breaker counts failures over the last BreakerWindow calls; past
//	    BreakerFailures it opens and rejects calls at once for BreakerDelay
//	    (fail fast: a 503 with Retry-After instead of a pile of waiting
//	    requests), then lets BreakerProbes calls through and closes when they
//	    succeed. A timeout is a failure; so is an error.
//	  - Retries sit outside the breaker so that each attempt is counted and an
//	    open breaker stops them (ErrOpen and a full bulkhead abort retrying).
//	    Only calls the caller declares idempotent are retried: retrying a
//	    charge that may have gone through is how customers pay twice.
//
// Permanent(err) marks a dependency's definite answer (card declined, no
// stock): returned as it is, never retried, not a breaker failure.
//
// Do turns the protection's own outcomes into client-ready apperr errors:
// breaker open or bulkhead full → Unavailable with RetryAfter (HTTP 503 +
// Retry-After), timeout → Timeout (HTTP 504). Metrics per dependency: calls
// by outcome, latency, calls in flight, breaker state.
//
// Retry is the one retry loop for work that is not a call to a guarded
// dependency — awaiting a leader, re-asking a membership verdict, trying
// the next endpoint, re-writing a batch, re-publishing: fn until it
// succeeds, returns a Permanent error, runs out of attempts or its context
// ends, with a backoff between calls. Sleep is a wait that its context can
// cut short; nothing in scalelab waits with a bare time.Sleep on a path a
// shutdown or a caller's deadline must be able to interrupt.
//
// docs/resilience.md explains when to use each pattern, and the cascade
// experiment (scalelab experiment run cascade) shows what happens without them.
package resilience
