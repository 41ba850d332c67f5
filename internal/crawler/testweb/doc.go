// Package testweb is the web the crawler is tested and measured on, since
// tests here may reach nothing but this machine: thousands of virtual
// hosts (hostN.test), each on a loopback address of its own, a name
// server that resolves them, and a log of every fetch from which a
// checker counts what a crawl did wrong.
//
// The model (web.go, page.go) is a pure function of its Config: which
// hosts exist, what each answers at each path, which links a page holds.
// A link graph drawn from the seed, with power-law popularity of hosts
// and of pages, plus a chain (each page links the next; each home the
// next host's home) so that every page is reachable from host0's home.
// Links are written as pages write them — relative, with fragments, in
// capitals, with dot segments — so normalisation is exercised everywhere.
//
// Every tenth host of a kind: robots.txt with rules (Disallow: /private/,
// which home pages link to), with a Crawl-delay, missing (404: all
// allowed), failing (500) or timing out (both: nothing allowed, RFC 9309
// §2.3.1.4), empty. One host in five carries a hazards page: an exact
// duplicate and a near duplicate of a page, a redirect chain and a
// redirect loop, 404 and 500, a slow answer, a body that never ends, a
// PDF, a huge page, an infinite calendar (a trap), and a link to a name
// that resolves to 127.0.0.1 (an SSRF guard must refuse it).
//
// The checker (check.go) works from the server's side of each fetch:
// robots violations (a path the host's robots.txt, as served, forbids),
// politeness violations (a fetch of a host that starts sooner than the
// delay after the end of the previous one, or during it — the server's
// start is later and its end earlier than the crawler's, so a polite
// crawler never fails it), and duplicate fetches (a path of a host
// fetched twice).
package testweb
