// Package crawler is a polite web crawler, and the synthetic web it is
// checked on (package testweb), whose fetch log proves politeness by
// counting rather than by trusting.
//
// # One fetch, in order
//
//  1. The frontier (package frontier: Mercator's priority front queues,
//     one back queue per host, a heap of each host's next allowed time)
//     has one reader, the crawl's dispatcher, which hands the next free
//     fetcher a URL whose host may be contacted now; the host is then busy
//     until the fetch ends — one connection per host.
//  2. The host's robots.txt rules come from memory, else from the store
//     (crawler_robots, shared by every crawl and process), else are
//     fetched in this very slot: the robots.txt fetch is the host's fetch
//     for this turn, and the URL goes back to the head of its queue with
//     the host's delay running (Frontier.Retry). RFC 9309 decides what a
//     missing (4xx: all allowed), failing (5xx) or unreachable (no answer)
//     file means (nothing allowed); a Crawl-delay longer than the crawl's
//     own delay becomes the host's.
//  3. A URL the rules forbid is dropped without contacting the host
//     (Frontier.Cancel) and recorded as skipped.
//  4. The fetch (fetch.go) resolves the host through the DNS cache
//     (resolve.go: TTL, one lookup per name at a time), checks the address
//     against the SSRF guard (no loopback, private, link-local, multicast
//     or unspecified address unless allowed by prefix) and dials exactly
//     that address; it follows no redirect (a redirect's target is a new
//     URL, subject to the same rules and to politeness), reads at most
//     MaxBody bytes of text bodies and none of others, all within a
//     deadline.
//  5. The host's delay starts when the fetch ends (250 ms later for a
//     fetch the crawler cut short: the server may not have noticed yet).
//  6. Extraction (extract.go, x/net/html's tokenizer) gives the title,
//     description, canonical link, language and links; links are
//     normalised (normalize.go) — scheme and host case, default ports,
//     fragments, dot segments, escapes, query order — so that the
//     spellings of one resource are one key.
//  7. Duplicates: an exact one has a body whose SHA-256 a page of the
//     crawl had (a Bloom filter of the bodies seen spares unique bodies
//     the store's lookup); a near one, a SimHash (fingerprint.go, votes
//     counted bit-sliced: a profile put the textbook loop at 40 % of the
//     CPU) within 6 bits of a page's, found through a block index instead
//     of a scan. Both are per instance for pages recorded after it
//     started (and the exact one also for those stored before).
//  8. New links pass the domain filters and the depth limit, then the
//     URL-seen test: a Bloom filter (bounded memory; no false "new") in
//     front of the store, which settles the filter's "maybe"s with one
//     query per page. The page, its new links and its URL's done-mark are
//     written in one transaction — shared by the fetches that end while
//     the previous commit runs (store_group.go: group commit, because one
//     transaction a page made the store's single writer the limit); the
//     insert reports which links were really new (RETURNING), and only
//     those are queued — so the frontier never holds a URL twice, even
//     when two fetchers find it at once.
//  9. Traps: per host, at most MaxPerHost URLs; per host and path pattern
//     (the path with its digits folded: /calendar/#/#/), at most
//     MaxPerPattern. A calendar that links next month for ever costs that
//     many fetches and no more.
//
// # Crashes
//
// A URL stays queued in the store until its fetch is recorded, so a
// crawler killed mid-fetch fetches it again after a restart — once. A
// restarted crawler resumes every running crawl from the store (queued
// URLs into the frontier, every recorded URL into the Bloom filter, the
// caps' counts from every URL recorded), and does not ask any host for
// robots.txt again while the stored file is fresh.
//
// # Several instances (cluster.go)
//
// Instances share the SQL store and nothing else: no instance talks to
// another, so there is no peer port to guard. A host belongs to one of
// 256 shards (a hash of its name). Every instance writes a heartbeat; the
// live ones form a consistent-hash ring (shard.go: 64 points each), and
// each takes the lease of the shards the ring gives it
// (crawler_shards: owner, lease end) when the lease is free, its own, or
// expired. An instance fetches a host only while it holds the host's
// shard's lease with a fetch's timeout and a guard to spare, and cuts
// every fetch at the lease's end less the guard: so when a lease runs out
// (its holder was killed, or cannot reach the store), no fetch of the old
// holder outlives it, and the next holder cannot overlap one. Leases are
// renewed every tenth of their length by a goroutine of their own.
//
// A URL is recorded by whoever finds it, with the instance whose frontier
// takes it (loaded_by): the finder, if it holds the shard, else nobody,
// and the shard's holder takes the unheld URLs of its shards from the
// store every 50 ms. Taking a shard loads all its queued URLs and counts
// its recorded ones against the caps; giving one back (the ring changed:
// an instance joined) drops its hosts from the frontier, waits for their
// fetches to end, then frees the lease — with a read-write lock making
// sure no fetch being recorded decides "mine" for a shard being given
// back. Every 10 s a holder also takes back URLs of its shards that a
// stalled former holder recorded as its own. A host taken over waits its
// delay from the moment it was taken, since the instance before (or the
// process before a restart) may have just fetched it. A crawl is done
// when no instance has a fetch in flight and the store holds no queued
// URL; pause, resume and stop reach the other instances through the
// crawl's state in the store within a second.
package crawler
