// Package shortener is a URL shortener: links under a generated code (the
// base62 of a Snowflake ID) or a chosen alias, redirects served from a
// cache, and click statistics counted asynchronously.
// docs/shortener.md has the API and the measurements.
//
// # Redirects
//
// GET /{code} is cache-aside. A code that cannot exist (length, alphabet)
// is a 404 without a lookup. A cache hit is one in-process lookup and a
// 302. A miss reads the database through a singleflight group — a thousand
// concurrent misses of one hot code cost one query — and caches the answer:
// the link for CacheTTL, or a negative entry ("no such code") for
// NegativeTTL, so that a flood of requests for a bad code reaches the
// database once per code per NegativeTTL. Expiry is checked on every hit
// against the link's expiry time and the injected clock (Config.Now), so a
// cached link turns 410 at its exact second. With Redis the cache has two
// levels and every write or delete is broadcast over pub/sub; with
// in-process caches on several instances nothing is invalidated, which
// is why more than one instance wants Redis. Two cache-aside races are
// accepted and bounded by the TTLs: a lookup that read the database just
// before a concurrent delete re-caches the deleted link, and one that found
// nothing just before a create caches "not found".
//
// # Clicks
//
// Clicks never slow a redirect (clicks.go): the handler puts the click into
// a bounded channel with a non-blocking send (a full channel drops and
// counts). A publisher counts clicks per (code, day, referrer, browser) for
// 500 ms and publishes the counts as one broker message with a random batch
// ID, so broker, JSON and SQL work grow with the number of hot links, not
// of clicks. Consumers in one group apply the batches in one transaction
// that skips batch IDs already recorded and upserts the counts: delivery is
// at-least-once, counting exactly-once. Stats are eventually consistent.
//
// # Links
//
// A link is validated before it is stored (validate.go): an absolute
// http(s) URL without credentials that does not point back at the
// shortener itself, hosts compared in the canonical form a browser
// connects to (127.1, 2130706433 and [::ffff:127.0.0.1] are all 127.0.0.1),
// so that two links cannot redirect to each other for ever. Creation is
// rate-limited per client (ratelimit: GCRA in Redis, shared by all
// instances, or in-process). Deleting needs the link's delete token
// (stored as a SHA-256 hash, compared in constant time) or the host's
// admin token (internal/platform/auth).
//
// # Files
//
//	system.go   Config, the Service and its wiring on host.Deps; host.System
//	links.go    the links: create, resolve, delete, stats, their cache entries
//	http.go     the HTTP surface
//	store.go    SQL: links, clicks, batch IDs (migrations/ per dialect)
//	clicks.go   the click pipeline: buffer, publisher, aggregator
//	validate.go codes, aliases, target URLs
//	useragent.go browser families and referrer hosts for the stats
//	cmd.go      `scalelab shortener serve`
package shortener
