// Package shop is an online shop built to survive slow and failing
// dependencies: a product catalog with a search index, carts, and a
// checkout that calls two downstream services — inventory reservation and
// payment — over HTTP.
//
// Stock is the shop's own: a checkout takes it in one SQL transaction with
// a conditional decrement (stock >= quantity), so two checkouts can never
// both take the last unit on any engine. Checkout is a saga whose state is
// the order row: place (take stock, write a pending order under the
// client's Idempotency-Key, a unique column), reserve at the warehouse
// (keyed by order), charge (the payment service's idempotency key is the
// order), mark paid. Every step is idempotent, so a client that retries
// with its key after a timeout or a 503 resumes the same order and can
// never be charged twice; the downstream client may retry for the same
// reason. A checkout whose payment outcome stays unknown is settled by the
// reconciler: paid if the payment service has the charge, otherwise the key
// is voided there first (a late charge is then refused) and only then is
// the order failed and its stock returned.
//
// The search index is a table of (term, product_id): the words of a
// product's name and one "c:category" term. A search walks its rarest-looking
// term's rows in product ID order and probes the others by primary key, so
// a page costs about limit × terms index lookups whatever the catalog's
// size, on SQLite, PostgreSQL and MySQL alike. It matches whole words, not
// prefixes or typos; a real catalog would add a search engine beside it.
//
// Downstream calls go through internal/platform/resilience (timeout,
// retries with jittered backoff, a breaker per dependency, a bulkhead);
// --resilience=false swaps in the naive client for the cascade experiment
// (package cascade). `scalelab shop downstream` simulates both services
// with injectable latency, failures (half of them after doing the work, as
// a lost answer) and stalls.
package shop
