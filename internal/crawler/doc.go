// Package crawler is a polite web crawler, and the synthetic web it is
// checked on (package testweb), whose fetch log proves politeness by
// counting rather than by trusting.
//
// # One fetch, in order
//
//  1. The frontier (package frontier: Mercator's priority front queues,
//     one back queue per host, a heap of each host's next allowed time)
//     hands a fetcher a URL whose host may be contacted now; the host is
//     then busy until the fetch ends — one connection per host.
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
//  5. The host's delay starts when the fetch ends (100 ms later for a
//     fetch the crawler cut short: the server may not have noticed yet).
//  6. Extraction (extract.go, x/net/html's tokenizer) gives the title,
//     description, canonical link, language and links; links are
//     normalised (normalize.go) — scheme and host case, default ports,
//     fragments, dot segments, escapes, query order — so that the
//     spellings of one resource are one key.
//  7. Duplicates: an exact one has a body whose SHA-256 a page of the
//     crawl had; a near one, a SimHash (fingerprint.go) within 6 bits of a
//     page's, found through a block index instead of a scan.
//  8. New links pass the domain filters and the depth limit, then the
//     URL-seen test: a Bloom filter (bounded memory; no false "new") in
//     front of the store, which settles the filter's "maybe"s with one
//     query per page. The page, its new links and its URL's done-mark are
//     written in one transaction; the insert reports which links were
//     really new (RETURNING), and only those are queued — so the frontier
//     never holds a URL twice, even when two fetchers find it at once.
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
// URLs into the frontier, every recorded URL into the Bloom filter), does
// not ask any host for robots.txt again while the stored file is fresh,
// and holds every host for its delay from the start, since it cannot know
// when the process before it last fetched them.
//
// What is not here yet: several crawler processes sharing one crawl
// (hosts partitioned by consistent hashing), and the console page.
package crawler
