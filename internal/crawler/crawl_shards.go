package crawler

import (
	"context"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/crawler/frontier"
)

// loadShards puts a crawl's queued URLs of shards this instance holds
// (or is taking) into its frontier. loadAll, for a shard just taken,
// also counts every admitted URL of the shard's hosts against their caps,
// so that a cap holds across instances and restarts.
func (c *crawl) loadShards(ctx context.Context, shards []int, mode loadMode) error {
	rows, err := c.eng.store.loadShards(ctx, c.id, shards, c.eng.instance, mode)
	if err != nil || len(rows) == 0 {
		return err
	}
	now := c.eng.now()
	var refused []URLRow
	var reasons []string
	c.mu.Lock()
	for _, r := range rows {
		c.seen.Add(hashKey(r.Hash))
		why := ""
		if mode == loadAll {
			if r.State == "skipped" && (r.Reason == capHost || r.Reason == capPattern) {
				continue
			}
			c.hostSeen[r.Host]++
			c.patterns[pattern(r.URL)]++
		} else {
			why = c.admit(r.URLRow)
		}
		if r.State != "queued" {
			continue
		}
		if why == "" {
			if err := c.front.Add(frontier.Item{URL: r.URL, Host: r.Host, Priority: r.Priority, Depth: r.Depth, Redirects: r.Redirects}, now); err != nil {
				why = err.Error()
			}
		}
		if why != "" {
			c.stats.Capped++
			refused = append(refused, r.URLRow)
			reasons = append(reasons, why)
		}
	}
	c.mu.Unlock()
	c.signal()
	for i, r := range refused {
		if err := c.eng.store.skip(ctx, c.id, r.Hash, reasons[i]); err != nil {
			return err
		}
	}
	return nil
}

// release takes the hosts of shards out of the frontier (the store keeps
// their URLs queued for the next owner) and forgets their caps' counts;
// it returns once none of their fetches is in flight.
func (c *crawl) release(ctx context.Context, shards map[int]bool) {
	now := c.eng.now()
	var hosts []string
	c.mu.Lock()
	for h := range c.hostSeen {
		if shards[shardOf(h)] {
			c.front.Drop(h, now)
			delete(c.hostSeen, h)
			hosts = append(hosts, h)
		}
	}
	for p := range c.patterns {
		h, _, _ := strings.Cut(p, " ")
		if shards[shardOf(h)] {
			delete(c.patterns, p)
		}
	}
	c.mu.Unlock()
	// Fetches in flight end by their deadline (the lease's end, at worst).
	for {
		c.mu.Lock()
		busy := false
		for _, h := range hosts {
			if c.busy[h] > 0 {
				busy = true
				break
			}
		}
		c.mu.Unlock()
		if !busy || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	// A fetch that ended meanwhile may have given its URL back (a robots
	// fetch, a fetch cut short): drop again, now that none is in flight.
	c.mu.Lock()
	for _, h := range hosts {
		c.front.Drop(h, now)
	}
	c.mu.Unlock()
}

// over reports whether the crawl is done or stopped here.
func (c *crawl) over() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats.State == "done" || c.stats.State == "stopped"
}

// follow applies a state another instance gave the crawl.
func (c *crawl) follow(state string) {
	c.mu.Lock()
	cur := c.stats.State
	switch {
	case state == cur || cur == "done" || cur == "stopped":
		c.mu.Unlock()
		return
	case state == "paused" || state == "running":
		c.paused, c.stats.State = state == "paused", state
		c.mu.Unlock()
		c.signal()
		return
	}
	c.stats.State = state // stopped or done
	c.mu.Unlock()
	c.cancel()
}

// takeoverWait is how long a host must wait before this instance contacts
// it: until its delay has passed since this instance took the host's
// shard, because the instance before it (or this process before a
// restart) may have fetched it just before.
func (c *crawl) takeoverWait(host string, robotsDelay time.Duration, now time.Time) time.Duration {
	since, ok := c.eng.heldSince(shardOf(host))
	if !ok {
		return 0
	}
	d := max(time.Duration(c.cfg.DelayMS)*time.Millisecond, robotsDelay) + abortGrace
	return since.Add(d).Sub(now)
}
