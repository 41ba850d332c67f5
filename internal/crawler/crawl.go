package crawler

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/scalelab/scalelab/internal/crawler/frontier"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// CrawlConfig is one crawl: where it starts, what it may fetch, how fast.
type CrawlConfig struct {
	Seeds []string `json:"seeds"`
	// Allow and Deny are host suffixes ("example.com" covers
	// www.example.com). An empty Allow allows every host; Deny wins.
	Allow []string `json:"allow_domains,omitempty"`
	Deny  []string `json:"deny_domains,omitempty"`
	// MaxDepth is links from a seed (0: no limit); MaxPages, pages fetched
	// in all (0: no limit); MaxPerHost, URLs one host may hold and have
	// fetched; MaxPerPattern, URLs of one host whose paths differ only in
	// their digits (/calendar/2026/01/ and /calendar/2026/02/): the bound
	// on traps that generate URLs for ever.
	MaxDepth      int `json:"max_depth,omitempty"`
	MaxPages      int `json:"max_pages,omitempty"`
	MaxPerHost    int `json:"max_per_host,omitempty"`
	MaxPerPattern int `json:"max_per_pattern,omitempty"`
	// DelayMS is the least time between the end of one fetch of a host
	// and the start of the next (a host's Crawl-delay, when longer, wins).
	DelayMS  int `json:"delay_ms"`
	Fetchers int `json:"fetchers,omitempty"` // fetches in flight at once (default 64)
}

func (c *CrawlConfig) validate() error {
	if len(c.Seeds) == 0 || len(c.Seeds) > 10_000 {
		return apperr.E(apperr.Invalid, "seeds: 1 to 10,000 URLs")
	}
	for i, s := range c.Seeds {
		n, err := Normalize(s)
		if err != nil {
			return apperr.E(apperr.Invalid, "seed %q: an absolute http(s) URL", s)
		}
		c.Seeds[i] = n
	}
	if c.MaxDepth < 0 || c.MaxPages < 0 || c.MaxPerHost < 0 || c.MaxPerPattern < 0 || c.DelayMS < 0 || c.DelayMS > 3_600_000 || c.Fetchers < 0 || c.Fetchers > 4096 {
		return apperr.E(apperr.Invalid, "limits must be ≥ 0; delay_ms at most an hour; fetchers at most 4096")
	}
	if c.Fetchers == 0 {
		c.Fetchers = 64
	}
	if c.MaxPerHost == 0 {
		c.MaxPerHost = 100_000
	}
	if c.MaxPerPattern == 0 {
		c.MaxPerPattern = 1000
	}
	for _, list := range [][]string{c.Allow, c.Deny} {
		for i := range list {
			list[i] = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(list[i])), ".")
		}
	}
	return nil
}

// inScope applies the domain filters to a host (with its port).
func (c *CrawlConfig) inScope(host string) bool {
	name, _, _ := strings.Cut(host, ":")
	match := func(list []string) bool {
		for _, d := range list {
			if name == d || strings.HasSuffix(name, "."+d) {
				return true
			}
		}
		return false
	}
	if match(c.Deny) {
		return false
	}
	return len(c.Allow) == 0 || match(c.Allow)
}

// abortGrace is added to the end of a fetch the crawler cut short: the
// server learns of the closed connection a moment later (over 100 ms on
// a loaded machine), and until then the fetch is still running for it.
const abortGrace = 250 * time.Millisecond

// levels is the frontier's priority levels: a URL's level is its depth,
// capped; a host's home page goes first.
const levels = 4

func priority(u string, depth int) int {
	if strings.Count(u, "/") == 3 && strings.HasSuffix(u, "/") { // scheme://host/
		return 0
	}
	return min(depth, levels-1)
}

// crawl is one crawl running in this process.
type crawl struct {
	id     int64
	cfg    CrawlConfig
	eng    *Engine
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	front    *frontier.Frontier
	seen     *bloom.BloomFilter // URL hashes this crawl has recorded
	exact    *bloom.BloomFilter // exact hashes of the bodies recorded
	near     NearDuplicates
	hostSeen map[string]int // URLs recorded per host (MaxPerHost)
	patterns map[string]int // URLs recorded per host and digit-free path (MaxPerPattern)
	busy     map[string]int // fetches in flight per host
	wake     chan struct{}
	paused   bool
	inFlight int
	// pagesElsewhere is the pages other instances stored, as last counted
	// (for MaxPages).
	pagesElsewhere int
	stats          Stats
}

// Stats is what a crawl has done so far in this process.
type Stats struct {
	Fetched    int            `json:"fetched"`
	Errors     map[string]int `json:"errors_by_kind"`
	Robots     int            `json:"robots_skipped"`
	OutOfScope int            `json:"out_of_scope"`
	Capped     int            `json:"capped"` // URLs over a host's or a pattern's cap
	ExactDups  int            `json:"exact_duplicates"`
	NearDups   int            `json:"near_duplicates"`
	Redirects  int            `json:"redirects"`
	// LeaseWaits counts URLs held back because the lease on their host's
	// shard was too near its end (renewals late) or gone; TakeoverWaits,
	// because this instance took the host's shard less than its delay ago.
	LeaseWaits    int            `json:"lease_waits"`
	TakeoverWaits int            `json:"takeover_waits"`
	Started       time.Time      `json:"started"`
	LastFetch     time.Time      `json:"last_fetch"`
	Queued        int            `json:"queued"`
	Hosts         int            `json:"hosts"`
	InFlight      int            `json:"in_flight"`
	PagesPerSec   float64        `json:"pages_per_s"`
	BloomBits     uint           `json:"bloom_bits"`
	BloomHashes   uint           `json:"bloom_hashes"`
	DNSHits       int64          `json:"dns_hits"`
	DNSMisses     int64          `json:"dns_misses"`
	State         string         `json:"state"`
	PerHostQueue  map[string]int `json:"queue_by_host,omitempty"`
}

func (c *crawl) snapshot(perHost bool) Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Errors = map[string]int{}
	for k, v := range c.stats.Errors {
		s.Errors[k] = v
	}
	s.Queued, s.Hosts, s.InFlight = c.front.Len(), c.front.Hosts(), c.inFlight
	if d := s.LastFetch.Sub(s.Started).Seconds(); d > 0 {
		s.PagesPerSec = float64(s.Fetched) / d
	}
	s.BloomBits, s.BloomHashes = c.seen.Cap(), c.seen.K()
	s.DNSHits, s.DNSMisses = c.eng.dns.Stats()
	if perHost {
		s.PerHostQueue = map[string]int{}
		for h := range c.hostSeen {
			if n := c.front.HostLen(h); n > 0 {
				s.PerHostQueue[h] = n
			}
		}
	}
	return s
}

func hashKey(h int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(h))
	return b[:]
}

// pattern is a URL's host, a space, and its path and query with every
// run of digits made '#'.
func pattern(u string) string {
	host, _ := HostKey(u)
	rest := u[strings.Index(u, host)+len(host):]
	var b strings.Builder
	b.WriteString(host)
	b.WriteByte(' ')
	digits := false
	for _, r := range rest {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String()
}

// admit decides, under c.mu, whether a newly recorded URL may be queued,
// counting it against its host's and its pattern's caps.
func (c *crawl) admit(u URLRow) string {
	if c.hostSeen[u.Host] >= c.cfg.MaxPerHost {
		return capHost
	}
	p := pattern(u.URL)
	if c.patterns[p] >= c.cfg.MaxPerPattern {
		return capPattern
	}
	c.hostSeen[u.Host]++
	c.patterns[p]++
	return ""
}

// The reasons a URL is skipped for a cap.
const (
	capHost    = "host cap"
	capPattern = "pattern cap"
)

// candidates turns links into rows worth recording: in scope, within the
// depth, not in the Bloom filter — or in it but unknown to the store (the
// filter's false positives, settled by one query).
func (c *crawl) candidates(ctx context.Context, links []string, depth, redirects int) ([]URLRow, error) {
	if c.cfg.MaxDepth > 0 && depth > c.cfg.MaxDepth {
		return nil, nil
	}
	var rows, maybe []URLRow
	c.mu.Lock()
	for _, l := range links {
		host, ok := HostKey(l)
		if !ok {
			continue
		}
		if !c.cfg.inScope(host) {
			c.stats.OutOfScope++
			continue
		}
		r := URLRow{Hash: URLHash(l), URL: l, Host: host, Depth: depth, Priority: priority(l, depth), Redirects: redirects}
		if c.seen.Test(hashKey(r.Hash)) {
			maybe = append(maybe, r)
		} else {
			rows = append(rows, r)
		}
	}
	c.mu.Unlock()
	if len(maybe) > 0 {
		hashes := make([]int64, len(maybe))
		for i, r := range maybe {
			hashes[i] = r.Hash
		}
		known, err := c.eng.store.known(ctx, c.id, hashes)
		if err != nil {
			return nil, err
		}
		for _, r := range maybe {
			if !known[r.Hash] {
				rows = append(rows, r)
			}
		}
	}
	return rows, nil
}

// enqueue puts the URLs the store took as new, of hosts this instance
// holds, into the frontier, or marks them skipped when a cap refuses them
// (the others' owners take them from the store).
func (c *crawl) enqueue(ctx context.Context, rows []URLRow, inserted map[int64]bool) {
	now := c.eng.now()
	var refused []URLRow
	var reasons []string
	c.mu.Lock()
	for _, r := range rows {
		c.seen.Add(hashKey(r.Hash))
		if !inserted[r.Hash] || r.LoadedBy != c.eng.instance {
			continue
		}
		why := c.admit(r)
		if why == "" {
			if err := c.front.Add(frontier.Item{URL: r.URL, Host: r.Host, Priority: r.Priority, Depth: r.Depth, Redirects: r.Redirects}, now); err != nil {
				why = err.Error()
			}
		}
		if why != "" {
			c.stats.Capped++
			refused = append(refused, r)
			reasons = append(reasons, why)
		}
	}
	c.mu.Unlock()
	c.signal()
	for i, r := range refused {
		if err := c.eng.store.skip(ctx, c.id, r.Hash, reasons[i]); err != nil {
			c.eng.logger.Warn("crawler: skip", "url", r.URL, "err", err)
		}
	}
}

func (c *crawl) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// handout is a URL given to a fetcher, with the time its fetch must end by.
type handout struct {
	it    frontier.Item
	until time.Time
}

// dispatch is the one reader of the frontier: it hands each URL whose
// host may be fetched now to the next free fetcher, until ctx ends. One
// reader, woken by a signal or by the time the next host is due, rather
// than every fetcher polling the frontier under its lock: a profile
// found fetchers spending a quarter of the CPU waking each other.
func (c *crawl) dispatch(ctx context.Context, out chan<- handout) {
	defer close(out)
	for {
		it, until, ok := c.next(ctx)
		if !ok {
			return
		}
		select {
		case out <- handout{it, until}:
		case <-ctx.Done():
			c.mu.Lock()
			c.front.Requeue(it, c.eng.now())
			c.inFlight--
			if c.busy[it.Host]--; c.busy[it.Host] <= 0 {
				delete(c.busy, it.Host)
			}
			c.mu.Unlock()
			return
		}
	}
}

// next waits for a URL whose host may be fetched now, or ctx's end. It
// returns the time by which the fetch must end: before this instance's
// lease on the host's shard does.
func (c *crawl) next(ctx context.Context) (frontier.Item, time.Time, bool) {
	for {
		c.mu.Lock()
		var it frontier.Item
		var until time.Time
		ok, wait := false, time.Duration(0)
		now := c.eng.now()
		if !c.paused && (c.cfg.MaxPages == 0 || c.pagesElsewhere+c.stats.Fetched+c.inFlight < c.cfg.MaxPages) {
			it, ok, wait = c.front.Next(now)
		}
		if ok {
			var held bool
			if until, held = c.eng.until(shardOf(it.Host), now); !held {
				// The lease is near its end (renewals failing) or gone:
				// the host waits, and goes if the shard does.
				c.front.Requeue(it, now)
				c.front.Hold(it.Host, now.Add(250*time.Millisecond))
				ok, wait = false, 10*time.Millisecond
				c.stats.LeaseWaits++
			}
		}
		if ok {
			c.inFlight++
			c.busy[it.Host]++
		}
		c.mu.Unlock()
		if ok {
			return it, until, true
		}
		if wait <= 0 || wait > 250*time.Millisecond {
			wait = 250 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return frontier.Item{}, time.Time{}, false
		case <-c.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// finished reports whether the crawl is over: nothing queued here or in
// flight here, and nothing queued in the store for any instance (or the
// page budget spent).
func (c *crawl) finished(ctx context.Context) (bool, error) {
	c.mu.Lock()
	idle := c.inFlight == 0 && c.front.Len() == 0
	spent := c.inFlight == 0 && c.cfg.MaxPages > 0 && c.pagesElsewhere+c.stats.Fetched >= c.cfg.MaxPages
	c.mu.Unlock()
	if spent {
		return true, nil
	}
	if !idle {
		return false, nil
	}
	queued, err := c.eng.store.anyQueued(ctx, c.id)
	return err == nil && !queued, err
}

// countPages refreshes what other instances have stored (for MaxPages).
func (c *crawl) countPages(ctx context.Context) error {
	n, err := c.eng.store.pageCount(ctx, c.id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.pagesElsewhere = max(0, n-c.stats.Fetched)
	c.mu.Unlock()
	return nil
}

// fetchOne handles one URL the frontier handed out.
func (c *crawl) fetchOne(ctx context.Context, it frontier.Item, until time.Time) {
	defer func() {
		c.mu.Lock()
		c.inFlight--
		if c.busy[it.Host]--; c.busy[it.Host] <= 0 {
			delete(c.busy, it.Host)
		}
		c.mu.Unlock()
		c.signal()
	}()
	eng := c.eng
	fetchCtx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	u, err := url.Parse(it.URL)
	if err != nil { // recorded normalised: cannot happen; drop it rather than wedge the host
		c.mu.Lock()
		c.front.Cancel(it.Host, eng.now())
		c.mu.Unlock()
		return
	}
	hash := URLHash(it.URL)
	rules, ok := eng.rulesFor(ctx, it.Host)
	if ok && rules.Delay > 0 {
		c.mu.Lock()
		c.front.SetDelay(it.Host, rules.Delay)
		c.mu.Unlock()
	}
	if wait := c.takeoverWait(it.Host, rules.Delay, eng.now()); wait > 0 {
		now := eng.now()
		c.mu.Lock()
		c.front.Requeue(it, now)
		c.front.Hold(it.Host, now.Add(wait))
		c.stats.TakeoverWaits++
		c.mu.Unlock()
		return
	}
	if !ok {
		resp, err := eng.fetcher.Get(fetchCtx, u.Scheme+"://"+u.Host+"/robots.txt")
		status := 0
		var body []byte
		if resp != nil {
			status, body = resp.Status, resp.Body
		}
		if fetchCtx.Err() != nil {
			// Stopped, or the lease's end came first: the host was
			// contacted, its delay runs, nothing is learnt.
			c.mu.Lock()
			c.front.Retry(it, eng.now().Add(abortGrace))
			c.mu.Unlock()
			return
		}
		rules = ParseRobots(status, body, err)
		eng.robots.Put(it.Host, rules)
		if err := eng.store.putRobots(ctx, it.Host, robotsFile{Status: status, Body: body, FetchedAt: eng.now()}); err != nil && ctx.Err() == nil {
			eng.logger.Warn("crawler: store robots.txt", "host", it.Host, "err", err)
		}
		c.mu.Lock()
		if rules.Delay > 0 {
			c.front.SetDelay(it.Host, rules.Delay)
		}
		c.front.Retry(it, eng.now()) // the host was contacted: its delay runs
		c.mu.Unlock()
		return
	}
	if !rules.Allowed(u.RequestURI()) {
		c.mu.Lock()
		c.front.Cancel(it.Host, eng.now())
		c.stats.Robots++
		c.mu.Unlock()
		if err := eng.store.skip(ctx, c.id, hash, "robots.txt ("+rules.Kind+")"); err != nil && ctx.Err() == nil {
			eng.logger.Warn("crawler: skip", "url", it.URL, "err", err)
		}
		return
	}
	started := eng.now()
	resp, ferr := eng.fetcher.Get(fetchCtx, it.URL)
	ended := eng.now()
	c.mu.Lock()
	if fetchCtx.Err() != nil {
		// Stopped, or the lease's end came first: the URL goes back,
		// recorded nowhere; the host was contacted, so its delay runs.
		c.front.Retry(it, ended.Add(abortGrace))
		c.mu.Unlock()
		return
	}
	if ferr != nil || resp.Truncated {
		// A fetch cut short (a timeout, a body past the limit) may keep the
		// server busy a moment after the crawler hung up — until it notices
		// the closed connection: the host's delay starts that much later.
		c.front.Done(it.Host, ended.Add(abortGrace))
	} else {
		c.front.Done(it.Host, ended)
	}
	c.mu.Unlock()

	depth, redirects := it.Depth, it.Redirects
	p := &Page{CrawlID: c.id, Hash: hash, URL: it.URL, Host: it.Host, FetchedAt: ended, FetchMS: int(ended.Sub(started).Milliseconds())}
	var links []string
	linkDepth := depth + 1
	kind := ""
	switch {
	case ferr != nil:
		kind = errorKind(ferr)
		p.Error = ferr.Error()
	default:
		p.Status, p.ContentType, p.Bytes, p.Truncated = resp.Status, resp.ContentType, int64(len(resp.Body)), resp.Truncated
		switch {
		case resp.Status >= 300 && resp.Status < 400 && resp.Location != "":
			if redirects >= 5 {
				kind = "too many redirects"
			} else if target, err := Resolve(u, resp.Location); err == nil {
				links, linkDepth, redirects = []string{target}, depth, redirects+1
				c.mu.Lock()
				c.stats.Redirects++
				c.mu.Unlock()
			}
		case resp.Status >= 400:
			kind = "http " + strconv.Itoa(resp.Status/100) + "xx"
		case resp.Status == 200 && strings.Contains(strings.ToLower(resp.ContentType), "html"):
			ex := ExtractHTML(u, resp.Body)
			p.Title, p.Description, p.Canonical, p.Lang, p.Links = ex.Title, ex.Description, ex.Canonical, ex.Lang, len(ex.Links)
			links = ex.Links
			c.fingerprint(ctx, p, resp.Body, ex.Text)
		}
		if resp.Truncated {
			kind = "truncated"
		}
		if resp.Status == 200 && len(resp.Body) > 0 {
			key := fmt.Sprintf("crawler/%d/%016x", c.id, uint64(hash))
			if _, err := eng.blobs.Put(ctx, key, bytes.NewReader(resp.Body), int64(len(resp.Body)), resp.ContentType); err == nil {
				p.BlobKey = key
			} else {
				eng.logger.Warn("crawler: store body", "url", it.URL, "err", err)
			}
		}
	}
	rows, err := c.candidates(ctx, links, linkDepth, redirects)
	if err == nil {
		err = c.record(ctx, p, rows)
	}
	c.mu.Lock()
	c.stats.Fetched++
	c.stats.LastFetch = ended
	if kind != "" {
		c.stats.Errors[kind]++
	}
	c.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		// The fetch stays queued in the store: a restart fetches it again.
		eng.logger.Warn("crawler: record fetch", "url", it.URL, "err", err)
	}
}

// record stores a fetch and the URLs it found, and queues here those of
// shards this instance holds. It read-holds the lease table from deciding
// who holds each URL to queueing it, so a shard is never given back
// between the two (its new owner would not see the URL as its own).
func (c *crawl) record(ctx context.Context, p *Page, rows []URLRow) error {
	eng := c.eng
	eng.own.handoff.RLock()
	defer eng.own.handoff.RUnlock()
	now := eng.now()
	for i := range rows {
		if _, ok := eng.until(shardOf(rows[i].Host), now); ok {
			rows[i].LoadedBy = eng.instance
		}
	}
	inserted, err := eng.store.recordFetch(ctx, p, rows, now)
	if err != nil {
		return err
	}
	c.enqueue(ctx, rows, inserted)
	return nil
}

// fingerprint marks a page as an exact duplicate (the same bytes as a page
// recorded before) or a near one (SimHash within the index's distance).
func (c *crawl) fingerprint(ctx context.Context, p *Page, body []byte, text string) {
	p.ExactHash, p.SimHash = ExactHash(body), SimHash(text)
	// Most pages are unlike any other: a filter of the bodies seen spares
	// them the store's lookup (a tenth of the CPU in a profile). It holds
	// what this process recorded and what the store held when the crawl
	// started here; a copy another instance recorded since is not seen.
	c.mu.Lock()
	maybe := c.exact.TestOrAddString(p.ExactHash)
	c.mu.Unlock()
	if !maybe {
		c.nearDup(p)
		return
	}
	if other, ok, err := c.eng.store.pageByExactHash(ctx, c.id, p.ExactHash, p.Hash); err == nil && ok {
		p.DupKind, p.DupOf = "exact", other
		c.mu.Lock()
		c.stats.ExactDups++
		c.mu.Unlock()
		return
	}
	c.nearDup(p)
}

func (c *crawl) nearDup(p *Page) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if other, ok := c.near.Add(p.SimHash, p.Hash); ok {
		p.DupKind, p.DupOf = "near", other
		c.stats.NearDups++
	}
}

func errorKind(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return "forbidden address"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(s, "timeout"):
		return "timeout"
	case strings.Contains(s, "no such host") || strings.Contains(s, "has no address"):
		return "dns"
	case strings.Contains(s, "refused"):
		return "refused"
	}
	return "network"
}

// configJSON is how a crawl's settings are stored.
func configJSON(cfg CrawlConfig) string {
	b, _ := json.Marshal(cfg)
	return string(b)
}
