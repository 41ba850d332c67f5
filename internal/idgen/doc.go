// Package idgen is the Snowflake ID service: `scalelab idgen serve` hands
// out 64-bit, time-ordered, unique IDs over HTTP, and `scalelab idgen decode`
// takes one apart.
//
// The generator itself lives in internal/platform/snowflake, because other
// systems issue Snowflake IDs too (the shortener's codes are base62
// Snowflakes) and systems never import each other. Read that package's
// doc.go for the layout, the clock-drift policy and the worker-ID leases;
// this package is the service around it:
//
//	GET /api/v1/ids?count=N   N in 1..10000 (default 1) → {"ids": ["…", …]} as decimal strings
//	GET /api/v1/ids/{id}      → {"id", "time", "worker", "sequence", "base62"}
//
// IDs travel as decimal strings because JSON numbers lose precision above
// 2^53 in JavaScript and many other parsers.
//
// Worker IDs: --worker-id N pins one; without it the server leases a free
// worker ID (in Redis when --cache is redis://, otherwise in the SQL store)
// and stops issuing — 503 and a failing /readyz — if it ever loses the lease.
// A clock that jumps backwards by more than --max-backward also yields 503
// for the requests that meet it, never a duplicate.
package idgen
