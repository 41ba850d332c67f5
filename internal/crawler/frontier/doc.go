// Package frontier is the crawler's URL frontier in the shape of
// Mercator's (Heydon and Najork, 1999; the textbook version is chapter 20
// of Manning, Raghavan and Schütze): it decides which URL is fetched next
// so that important pages come first and no host is fetched faster than
// it allows. It is pure logic: URLs, hosts and the time go in, decisions
// come out; it does no IO and reads no clock (every call takes now), so
// every ordering and politeness rule is tested exactly.
//
// # The two stages
//
// Front queues (one FIFO per priority level, 0 the most urgent) hold URLs
// as they are discovered; the caller picks the level (depth, host
// importance, a score of its own). Back queues hold URLs of one host each,
// and there are at most Config.BackQueues of them at once. When a back
// queue runs dry it is retired, and the router refills: it takes URLs
// from the front queues — the most urgent non-empty level first, with
// every level getting a turn now and then (Config.Starve), so that low
// priorities are late, never lost — appending each to its host's back
// queue if the host has one, until it meets a host that has none; that
// host gets the free back queue. So a back queue is a host's turn, the
// front queues order the hosts' turns, and a host with ten thousand URLs
// cannot crowd the others out of the back queues (Scrapy's scheduler
// starved on runs of one domain until it grew per-domain queues).
//
// # Politeness
//
// A heap holds the back queues not being fetched, keyed by the earliest
// time their host may be contacted again. Next pops the host whose time
// has come (the earliest; ties by the URL's priority) and hands out its
// next URL; the host is then busy — one fetch per host at a time — until
// the caller reports Done, which sets the host's next time to the end of
// that fetch plus the host's delay: Config.Delay, or the host's own
// (SetDelay, from robots.txt's Crawl-delay). The rule the crawl is
// checked against is exactly this: for every host, a fetch starts no
// sooner than its delay after the previous fetch of that host ended.
//
// # Bounds
//
// Config.PerHost caps the URLs held for one host (front and back), so a
// crawler trap (an infinite calendar) fills one host's quota and no more;
// Config.Max caps the frontier. Add says why it refused a URL. The
// frontier holds a URL at most once only if the caller adds it once: the
// URL-seen test lives in front of it (a Bloom filter before the store).
//
// # Caller duties
//
//  1. Add each new URL once, with its host (lower case, with the port)
//     and a priority level.
//  2. Call Next(now); it returns a URL, or how long until one may be
//     ready (no URL and a zero wait: nothing is queued and nothing is
//     being fetched, or everything queued waits on busy hosts).
//  3. Call Done(host, now) when the fetch of a URL Next handed out ends,
//     whatever its outcome; Requeue(item, now) instead, to give the URL
//     back untouched (a shutdown); Retry(item, now) to give it back after
//     the host was contacted for something else (its robots.txt);
//     Cancel(host, now) to drop it without contacting the host.
//  4. SetDelay(host, d) when the host's robots.txt asks for a delay.
package frontier
