package crawler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/bits-and-blooms/bloom/v3"

	"github.com/scalelab/scalelab/internal/crawler/frontier"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// EngineConfig is what every crawl of a process shares.
type EngineConfig struct {
	DNSServer string         // host:port of the DNS server to ask; "" the system's resolver
	DNSTTL    time.Duration  // how long an answer is kept
	AllowNets []netip.Prefix // addresses the SSRF guard lets through although private or loopback
	Fetch     FetchConfig
	RobotsTTL time.Duration
}

// DefaultEngineConfig is a crawler of the open web: no private address
// allowed, 10 s fetches, 2 MiB bodies, robots.txt kept a day.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{DNSTTL: 5 * time.Minute, Fetch: FetchConfig{Timeout: 10 * time.Second, MaxBody: 2 << 20}, RobotsTTL: 24 * time.Hour}
}

// Engine runs the crawls of one process.
type Engine struct {
	store   *store
	blobs   blob.Store
	fetcher *Fetcher
	robots  *RobotsCache
	dns     *DNSCache
	logger  *slog.Logger
	now     func() time.Time
	newID   func() (int64, error)

	mu     sync.Mutex
	crawls map[int64]*crawl
	wg     sync.WaitGroup
}

// NewEngine opens the crawler's store.
func NewEngine(ctx context.Context, db *sqldb.DB, blobs blob.Store, cfg EngineConfig, logger *slog.Logger, newID func() (int64, error)) (*Engine, error) {
	st, err := openStore(ctx, db)
	if err != nil {
		return nil, err
	}
	dns := NewDNSCache(NewLookup(cfg.DNSServer), cfg.DNSTTL, nil)
	return &Engine{store: st, blobs: blobs, dns: dns, logger: logger, now: time.Now, newID: newID,
		fetcher: NewFetcher(cfg.Fetch, &Dialer{DNS: dns, Guard: Guard{Allow: cfg.AllowNets}}),
		robots:  NewRobotsCache(cfg.RobotsTTL, nil), crawls: map[int64]*crawl{}}, nil
}

// Create starts a crawl from its seeds.
func (e *Engine) Create(ctx context.Context, cfg CrawlConfig) (int64, error) {
	if err := cfg.validate(); err != nil {
		return 0, err
	}
	id, err := e.newID()
	if err != nil {
		return 0, apperr.E(apperr.Unavailable, "no crawl ID: %v", err)
	}
	now := e.now()
	if err := e.store.createCrawl(ctx, id, configJSON(cfg), now); err != nil {
		return 0, fmt.Errorf("crawler: create crawl: %w", err)
	}
	var seeds []URLRow
	for _, s := range cfg.Seeds {
		host, _ := HostKey(s)
		seeds = append(seeds, URLRow{Hash: URLHash(s), URL: s, Host: host, Priority: 0})
	}
	if _, err := e.store.addSeeds(ctx, id, seeds, now); err != nil {
		return 0, fmt.Errorf("crawler: seeds: %w", err)
	}
	return id, e.run(ctx, id, cfg, false, false)
}

// ResumeAll starts again the crawls the store shows running or paused
// (after a restart or a crash): each from its queued URLs.
func (e *Engine) ResumeAll(ctx context.Context) error {
	rows, err := e.store.crawls(ctx, "WHERE state IN ('running', 'paused')")
	if err != nil {
		return err
	}
	for _, r := range rows {
		var cfg CrawlConfig
		if err := json.Unmarshal([]byte(r.Config), &cfg); err != nil {
			e.logger.Warn("crawler: a crawl's settings do not parse; left alone", "crawl", r.ID, "err", err)
			continue
		}
		if err := cfg.validate(); err != nil {
			continue
		}
		if err := e.run(ctx, r.ID, cfg, r.State == "paused", true); err != nil {
			return err
		}
	}
	return nil
}

// run loads a crawl's frontier and URL-seen filter from the store and
// starts its fetchers.
func (e *Engine) run(ctx context.Context, id int64, cfg CrawlConfig, paused, resumed bool) error {
	e.mu.Lock()
	if _, ok := e.crawls[id]; ok {
		e.mu.Unlock()
		return nil
	}
	e.mu.Unlock()
	front, err := frontier.New(frontier.Config{Levels: levels, BackQueues: 3 * cfg.Fetchers, Delay: time.Duration(cfg.DelayMS) * time.Millisecond, PerHost: cfg.MaxPerHost})
	if err != nil {
		return err
	}
	// The filter's size bounds its memory; a crawl that outgrows it gets
	// more false "maybe"s, each settled by the store: slower, never wrong.
	expect := uint(min(max(10*cfg.MaxPages, 1_000_000), 50_000_000))
	c := &crawl{id: id, cfg: cfg, eng: e, front: front, seen: bloom.NewWithEstimates(expect, 0.01), done: make(chan struct{}),
		hostSeen: map[string]int{}, patterns: map[string]int{}, wake: make(chan struct{}, 1), paused: paused,
		stats: Stats{Errors: map[string]int{}, Started: e.now(), State: "running"}}
	if paused {
		c.stats.State = "paused"
	}
	if err := e.store.allHashes(ctx, id, func(h int64) { c.seen.Add(hashKey(h)) }); err != nil {
		return err
	}
	queued, err := e.store.queued(ctx, id, nil)
	if err != nil {
		return err
	}
	now := e.now()
	hosts := map[string]bool{}
	for _, u := range queued {
		c.admit(u)
		if err := front.Add(frontier.Item{URL: u.URL, Host: u.Host, Priority: u.Priority, Depth: u.Depth, Redirects: u.Redirects}, now); err != nil {
			_ = e.store.skip(ctx, id, u.Hash, err.Error())
		}
		hosts[u.Host] = true
	}
	if resumed {
		// This process does not know when the one before it last fetched
		// each host (a fetch may even have been in flight when it died):
		// no host is fetched before its delay has passed since now.
		base := time.Duration(cfg.DelayMS)*time.Millisecond + abortGrace
		for h := range hosts {
			d := base
			if r, ok := e.rulesFor(ctx, h); ok && r.Delay > 0 {
				front.SetDelay(h, r.Delay)
				d = max(d, r.Delay+abortGrace)
			}
			front.Hold(h, now.Add(d))
		}
		c.notBefore = now.Add(base)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	e.mu.Lock()
	e.crawls[id] = c
	e.mu.Unlock()
	var fetchers sync.WaitGroup
	for range cfg.Fetchers {
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			for {
				it, ok := c.next(runCtx)
				if !ok {
					return
				}
				c.fetchOne(runCtx, it)
			}
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(c.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				fetchers.Wait()
				return
			case <-t.C:
			}
			if c.finished() {
				c.mu.Lock()
				c.stats.State = "done"
				c.mu.Unlock()
				if err := e.store.setState(context.WithoutCancel(ctx), id, "done", e.now()); err != nil {
					e.logger.Warn("crawler: mark done", "crawl", id, "err", err)
				}
				cancel()
			}
		}
	}()
	return nil
}

// rulesFor is a host's robots.txt rules: from memory, or from the store
// when another process (or this one before a restart) fetched them and
// they are still fresh.
func (e *Engine) rulesFor(ctx context.Context, host string) (Robots, bool) {
	if r, ok := e.robots.Get(host); ok {
		return r, true
	}
	f, ok, err := e.store.robots(ctx, host)
	if err != nil || !ok {
		return Robots{}, false
	}
	var ferr error
	if f.Status == 0 {
		ferr = errNoAnswer
	}
	r := ParseRobots(f.Status, f.Body, ferr)
	if !e.robots.Fresh(r, f.FetchedAt) {
		return Robots{}, false
	}
	e.robots.PutAt(host, r, f.FetchedAt)
	return r, true
}

var errNoAnswer = errors.New("crawler: robots.txt got no answer")

func (e *Engine) get(id int64) (*crawl, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.crawls[id]
	if !ok {
		return nil, apperr.E(apperr.NotFound, "crawl %d is not running here", id)
	}
	return c, nil
}

// Pause stops handing out URLs (fetches in flight finish); Resume goes on.
func (e *Engine) Pause(ctx context.Context, id int64) error { return e.setPaused(ctx, id, true) }

// Resume goes on with a paused crawl.
func (e *Engine) Resume(ctx context.Context, id int64) error { return e.setPaused(ctx, id, false) }

func (e *Engine) setPaused(ctx context.Context, id int64, paused bool) error {
	c, err := e.get(id)
	if err != nil {
		return err
	}
	state := map[bool]string{true: "paused", false: "running"}[paused]
	c.mu.Lock()
	if c.stats.State == "done" || c.stats.State == "stopped" {
		c.mu.Unlock()
		return apperr.E(apperr.Conflict, "crawl %d is %s", id, c.stats.State)
	}
	c.paused, c.stats.State = paused, state
	c.mu.Unlock()
	c.signal()
	return e.store.setState(ctx, id, state, e.now())
}

// Stop ends a crawl for good; what it queued stays in the store.
func (e *Engine) Stop(ctx context.Context, id int64) error {
	c, err := e.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.stats.State != "done" {
		c.stats.State = "stopped"
	}
	state := c.stats.State
	c.mu.Unlock()
	c.cancel()
	<-c.done
	return e.store.setState(ctx, id, state, e.now())
}

// Wait blocks until a crawl is done or stopped, or ctx ends.
func (e *Engine) Wait(ctx context.Context, id int64) error {
	c, err := e.get(id)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CrawlView is a crawl's settings, state and statistics.
type CrawlView struct {
	ID      int64       `json:"id,string"`
	Config  CrawlConfig `json:"config"`
	State   string      `json:"state"`
	Stats   *Stats      `json:"stats,omitempty"` // while it runs in this process
	Queued  int         `json:"urls_queued"`
	Done    int         `json:"urls_done"`
	Skipped int         `json:"urls_skipped"`
	Pages   int         `json:"pages"`
	Exact   int         `json:"exact_duplicates"`
	Near    int         `json:"near_duplicates"`
}

// View is a crawl's state from the store, with this process's live
// statistics when it runs here.
func (e *Engine) View(ctx context.Context, id int64, perHost bool) (*CrawlView, error) {
	row, err := e.store.crawl(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &CrawlView{ID: id, State: row.State}
	_ = json.Unmarshal([]byte(row.Config), &v.Config)
	cs, err := e.store.counts(ctx, id)
	if err != nil {
		return nil, err
	}
	v.Queued, v.Done, v.Skipped, v.Pages, v.Exact, v.Near = cs.Queued, cs.Done, cs.Skipped, cs.Pages, cs.Exact, cs.Near
	if c, err := e.get(id); err == nil {
		s := c.snapshot(perHost)
		v.Stats = &s
	}
	return v, nil
}

// Search finds a crawl's stored pages by URL or title.
func (e *Engine) Search(ctx context.Context, id int64, q string, limit int) ([]Page, error) {
	return e.store.searchPages(ctx, id, q, limit)
}

// Close stops every crawl in this process, leaving their state as it is
// in the store, so that the next process resumes them.
func (e *Engine) Close() {
	e.mu.Lock()
	cs := make([]*crawl, 0, len(e.crawls))
	for _, c := range e.crawls {
		cs = append(cs, c)
	}
	e.mu.Unlock()
	for _, c := range cs {
		c.cancel()
	}
	e.wg.Wait()
	e.fetcher.CloseIdle()
}
