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
	// Instance names this process among the crawlers sharing the store
	// ("" a fresh name each start: host, pid and random bytes). Lease is
	// how long a shard's lease runs unrenewed: how long an instance that
	// died keeps its hosts from the others.
	Instance string
	Lease    time.Duration
}

// DefaultEngineConfig is a crawler of the open web: no private address
// allowed, 10 s fetches, 2 MiB bodies, robots.txt kept a day.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{DNSTTL: 5 * time.Minute, Fetch: FetchConfig{Timeout: 10 * time.Second, MaxBody: 2 << 20}, RobotsTTL: 24 * time.Hour, Lease: 25 * time.Second}
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

	instance     string
	started      time.Time
	lease        time.Duration
	fetchTimeout time.Duration
	own          owned
	coordMu      sync.Mutex // one coordinator pass, or one crawl starting, at a time
	lastForget   time.Time
	stopCoord    context.CancelFunc

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
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultEngineConfig().Lease
	}
	if cfg.Lease < 2*cfg.Fetch.Timeout {
		// Renewed every fifth of its length, a lease must keep a fetch's
		// timeout (and a guard) ahead of now between renewals, or fetches
		// stop being handed out.
		return nil, fmt.Errorf("crawler: the lease (%v) must be at least twice a fetch's timeout (%v)", cfg.Lease, cfg.Fetch.Timeout)
	}
	if cfg.Instance == "" {
		cfg.Instance = newInstanceName()
	}
	dns := NewDNSCache(NewLookup(cfg.DNSServer), cfg.DNSTTL, nil)
	e := &Engine{store: st, blobs: blobs, dns: dns, logger: logger, now: time.Now, newID: newID,
		fetcher: NewFetcher(cfg.Fetch, &Dialer{DNS: dns, Guard: Guard{Allow: cfg.AllowNets}}),
		robots:  NewRobotsCache(cfg.RobotsTTL, nil), crawls: map[int64]*crawl{},
		instance: cfg.Instance, lease: cfg.Lease, fetchTimeout: cfg.Fetch.Timeout, own: owned{to: map[int]time.Time{}, since: map[int]time.Time{}, taken: map[int]uint64{}}}
	e.started = e.now()
	e.coordMu.Lock()
	err = e.renew(ctx)
	if err == nil {
		err = e.tick(ctx)
	}
	e.coordMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("crawler: join the cluster: %w", err)
	}
	coordCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.stopCoord = cancel
	e.wg.Add(2)
	go e.coordinate(coordCtx)
	go e.renewLeases(coordCtx)
	return e, nil
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
	e.coordMu.Lock()
	defer e.coordMu.Unlock()
	return id, e.run(ctx, id, cfg, false)
}

// ResumeAll starts the crawls the store shows running or paused (after a
// restart or a crash, or started by another instance): each from its
// queued URLs of the shards this instance holds.
func (e *Engine) ResumeAll(ctx context.Context) error {
	e.coordMu.Lock()
	defer e.coordMu.Unlock()
	return e.syncCrawls(ctx)
}

// run loads a crawl's URL-seen filter and its queued URLs of the shards
// this instance holds, and starts its fetchers. Called with coordMu held.
func (e *Engine) run(ctx context.Context, id int64, cfg CrawlConfig, paused bool) error {
	if c, _ := e.get(id); c != nil {
		return nil
	}
	front, err := frontier.New(frontier.Config{Levels: levels, BackQueues: 3 * cfg.Fetchers, Delay: time.Duration(cfg.DelayMS) * time.Millisecond, PerHost: cfg.MaxPerHost})
	if err != nil {
		return err
	}
	// The filter's size bounds its memory; a crawl that outgrows it gets
	// more false "maybe"s, each settled by the store: slower, never wrong.
	expect := uint(min(max(10*cfg.MaxPages, 1_000_000), 50_000_000))
	c := &crawl{id: id, cfg: cfg, eng: e, front: front, seen: bloom.NewWithEstimates(expect, 0.01), exact: bloom.NewWithEstimates(expect, 0.01), done: make(chan struct{}),
		hostSeen: map[string]int{}, patterns: map[string]int{}, busy: map[string]int{}, wake: make(chan struct{}, 1), paused: paused,
		stats: Stats{Errors: map[string]int{}, Started: e.now(), State: "running"}}
	if paused {
		c.stats.State = "paused"
	}
	if err := e.store.allHashes(ctx, id, func(h int64) { c.seen.Add(hashKey(h)) }); err != nil {
		return err
	}
	if err := e.store.allExactHashes(ctx, id, func(h string) { c.exact.AddString(h) }); err != nil {
		return err
	}
	if err := c.loadShards(ctx, e.heldShards(), loadAll); err != nil {
		return err
	}
	if cfg.MaxPages > 0 {
		if err := c.countPages(ctx); err != nil {
			return err
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	e.mu.Lock()
	e.crawls[id] = c
	e.mu.Unlock()
	var fetchers sync.WaitGroup
	handouts := make(chan handout)
	fetchers.Add(1)
	go func() {
		defer fetchers.Done()
		c.dispatch(runCtx, handouts)
	}()
	for range cfg.Fetchers {
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			for h := range handouts {
				c.fetchOne(runCtx, h.it, h.until)
			}
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(c.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var counted time.Time
		for {
			select {
			case <-runCtx.Done():
				fetchers.Wait()
				return
			case <-t.C:
			}
			if cfg.MaxPages > 0 && e.now().Sub(counted) >= time.Second {
				counted = e.now()
				if err := c.countPages(runCtx); err != nil && runCtx.Err() == nil {
					e.logger.Warn("crawler: count pages", "crawl", id, "err", err)
				}
			}
			done, err := c.finished(runCtx)
			if err != nil && runCtx.Err() == nil {
				e.logger.Warn("crawler: is the crawl over", "crawl", id, "err", err)
			}
			if done {
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
	state := map[bool]string{true: "paused", false: "running"}[paused]
	c, err := e.get(id)
	if err != nil {
		return e.setRemote(ctx, id, state)
	}
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

// setRemote changes the state of a crawl this instance does not run; the
// instances that run it follow within a second.
func (e *Engine) setRemote(ctx context.Context, id int64, state string) error {
	row, err := e.store.crawl(ctx, id)
	if err != nil {
		return err
	}
	if row.State == "done" || row.State == "stopped" {
		return apperr.E(apperr.Conflict, "crawl %d is %s", id, row.State)
	}
	return e.store.setState(ctx, id, state, e.now())
}

// Stop ends a crawl for good; what it queued stays in the store.
func (e *Engine) Stop(ctx context.Context, id int64) error {
	c, err := e.get(id)
	if err != nil {
		return e.setRemote(ctx, id, "stopped")
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
	ID int64 `json:"id,string"`
	// Instance is the crawler that answered; Stats are its own.
	Instance string      `json:"instance"`
	Config   CrawlConfig `json:"config"`
	State    string      `json:"state"`
	Stats    *Stats      `json:"stats,omitempty"` // while it runs in this process
	Queued   int         `json:"urls_queued"`
	Done     int         `json:"urls_done"`
	Skipped  int         `json:"urls_skipped"`
	Pages    int         `json:"pages"`
	Exact    int         `json:"exact_duplicates"`
	Near     int         `json:"near_duplicates"`
}

// View is a crawl's state from the store, with this process's live
// statistics when it runs here.
func (e *Engine) View(ctx context.Context, id int64, perHost bool) (*CrawlView, error) {
	row, err := e.store.crawl(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &CrawlView{ID: id, State: row.State, Instance: e.instance}
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
	e.stopCoord()
	for _, c := range cs {
		c.cancel()
	}
	e.wg.Wait()
	// Every fetch has ended: the leases go back now rather than at their
	// end, so the other instances take the hosts at once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.leave(ctx, e.instance); err != nil {
		e.logger.Warn("crawler: leave the cluster", "err", err)
	}
	e.fetcher.CloseIdle()
}
