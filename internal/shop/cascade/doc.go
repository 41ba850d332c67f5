// Package cascade is `scalelab experiment run cascade`: the cascading-failure
// lesson, measured. It runs the shop (as its own process, so that its
// goroutines are its own) against the downstream simulator, drives steady
// open-model load through internal/platform/loadgen — catalog searches, cart
// creations and checkouts at fixed rates, latency measured from each
// request's scheduled time — and stalls the payment service for a while in
// the middle. It does this twice, with the shop's downstream client naive
// (no timeouts, no retries, no breaker, no bulkhead) and protected, and
// reports both side by side: successful requests per second, p50 and worst
// p99 per phase (before, during, after the stall), the error mix, the shop's
// goroutines and requests in flight, and how long checkouts took to recover
// after the payment service healed; with SVG plots over time.
//
// What makes the naive shop fall over is a shared, bounded resource: the
// shop's request concurrency (--max-in-flight, like a servlet container's
// worker pool, the same in both modes). In Go a stalled call costs one
// parked goroutine, so without a bound the rest of the shop would only see
// memory grow; with one, stalled checkouts fill every slot and catalog
// requests are refused too. The protected shop's checkouts give up at their
// timeout and then at its open breaker, so the slots stay free.
package cascade
