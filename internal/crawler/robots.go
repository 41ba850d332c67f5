package crawler

import (
	"sync"
	"time"

	"github.com/temoto/robotstxt"
)

// Agent is the crawler's name in robots.txt groups and its User-Agent.
const Agent = "scalelab-crawler"

// Robots is one host's robots.txt as the crawler obeys it (RFC 9309):
// a 2xx file's rules for our agent (or *); 4xx: everything allowed; 5xx
// or no answer at all (a timeout, a refused connection): nothing allowed
// until the entry expires and the file is fetched again.
type Robots struct {
	Kind  string        // "rules", "missing" (4xx), "error" (5xx), "unreachable"
	Delay time.Duration // Crawl-delay, 0 when none
	group *robotstxt.Group
}

// Allowed reports whether path (with its query) may be fetched.
func (r Robots) Allowed(path string) bool {
	switch r.Kind {
	case "missing":
		return true
	case "rules":
		return r.group == nil || r.group.Test(path)
	}
	return false
}

// ParseRobots turns a fetch of /robots.txt into rules; err is the fetch's
// own error (the file could not be fetched).
func ParseRobots(status int, body []byte, err error) Robots {
	switch {
	case err != nil || status == 0:
		return Robots{Kind: "unreachable"}
	case status >= 500:
		return Robots{Kind: "error"}
	case status >= 400:
		return Robots{Kind: "missing"}
	case status >= 300: // a redirect not followed: as unreachable, for now
		return Robots{Kind: "unreachable"}
	}
	data, perr := robotstxt.FromStatusAndBytes(status, body)
	if perr != nil { // unparseable: as if it said nothing
		return Robots{Kind: "missing"}
	}
	g := data.FindGroup(Agent)
	r := Robots{Kind: "rules", group: g}
	if g != nil {
		r.Delay = g.CrawlDelay
	}
	return r
}

// RobotsCache keeps each host's rules for a TTL (a tenth of it after an
// error, so that a host whose robots.txt failed is asked again soon).
type RobotsCache struct {
	ttl    time.Duration
	now    func() time.Time
	mu     sync.Mutex
	byHost map[string]robotsEntry
}

type robotsEntry struct {
	rules   Robots
	expires time.Time
}

// NewRobotsCache makes a cache; now is the clock (time.Now when nil).
func NewRobotsCache(ttl time.Duration, now func() time.Time) *RobotsCache {
	if now == nil {
		now = time.Now
	}
	return &RobotsCache{ttl: ttl, now: now, byHost: map[string]robotsEntry{}}
}

// Get is a host's rules while they are fresh.
func (c *RobotsCache) Get(host string) (Robots, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byHost[host]
	if !ok || !c.now().Before(e.expires) {
		return Robots{}, false
	}
	return e.rules, true
}

// Put stores a host's rules, fetched at now.
func (c *RobotsCache) Put(host string, r Robots) { c.PutAt(host, r, c.now()) }

// PutAt stores a host's rules as fetched at a given time (from the store,
// after a restart), so that they expire when the fetch's would have.
func (c *RobotsCache) PutAt(host string, r Robots, fetched time.Time) {
	ttl := c.ttl
	if r.Kind == "error" || r.Kind == "unreachable" {
		ttl /= 10
	}
	c.mu.Lock()
	c.byHost[host] = robotsEntry{rules: r, expires: fetched.Add(ttl)}
	c.mu.Unlock()
}

// Fresh reports whether rules fetched at a time are still to be obeyed.
func (c *RobotsCache) Fresh(r Robots, fetched time.Time) bool {
	ttl := c.ttl
	if r.Kind == "error" || r.Kind == "unreachable" {
		ttl /= 10
	}
	return c.now().Before(fetched.Add(ttl))
}
