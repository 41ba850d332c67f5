package crawler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Lookup resolves a name to addresses (net.Resolver.LookupNetIP's shape).
type Lookup func(ctx context.Context, name string) ([]netip.Addr, error)

// NewLookup is a lookup through the system's resolver, or, with server
// (host:port), through that DNS server only — the synthetic web's — with
// the same Go resolver code either way.
func NewLookup(server string) Lookup {
	r := net.DefaultResolver
	if server != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, server)
		}}
	}
	return func(ctx context.Context, name string) ([]netip.Addr, error) {
		return r.LookupNetIP(ctx, "ip4", name)
	}
}

// DNSCache remembers answers for TTL (and failures for a tenth of it), and
// makes concurrent lookups of one name one lookup. A crawler asks for the
// same few thousand hosts millions of times; the resolver should hear of
// each once a TTL.
type DNSCache struct {
	lookup Lookup
	ttl    time.Duration
	now    func() time.Time
	group  singleflight.Group
	mu     sync.Mutex
	byName map[string]dnsEntry
	hits   int64
	misses int64
}

type dnsEntry struct {
	addrs   []netip.Addr
	err     error
	expires time.Time
}

// NewDNSCache wraps lookup; now is the clock (time.Now when nil).
func NewDNSCache(lookup Lookup, ttl time.Duration, now func() time.Time) *DNSCache {
	if now == nil {
		now = time.Now
	}
	return &DNSCache{lookup: lookup, ttl: ttl, now: now, byName: map[string]dnsEntry{}}
}

// Resolve answers from the cache, or asks the resolver.
func (c *DNSCache) Resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	c.mu.Lock()
	e, ok := c.byName[name]
	if ok && c.now().Before(e.expires) {
		c.hits++
		c.mu.Unlock()
		return e.addrs, e.err
	}
	c.misses++
	c.mu.Unlock()
	v, err, _ := c.group.Do(name, func() (any, error) {
		// A caller that missed the cache just as another's lookup ended
		// finds its answer here instead of asking again.
		c.mu.Lock()
		e, ok := c.byName[name]
		c.mu.Unlock()
		if ok && c.now().Before(e.expires) {
			return e.addrs, e.err
		}
		addrs, err := c.lookup(ctx, name)
		if err == nil && len(addrs) == 0 {
			err = fmt.Errorf("crawler: %s has no address", name)
		}
		ttl := c.ttl
		if err != nil {
			ttl /= 10
		}
		c.mu.Lock()
		c.byName[name] = dnsEntry{addrs: addrs, err: err, expires: c.now().Add(ttl)}
		c.mu.Unlock()
		return addrs, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]netip.Addr), nil
}

// Stats is the cache's hits and misses.
func (c *DNSCache) Stats() (hits, misses int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Guard decides which addresses the crawler may connect to: by default
// none of loopback, private, link-local, multicast or unspecified — a
// page that links to http://169.254.169.254/ or to a name resolving to
// 127.0.0.1 must not make the crawler fetch it (SSRF) — except the
// prefixes allowed explicitly (the synthetic web's loopback range).
type Guard struct {
	Allow []netip.Prefix
}

// ErrForbiddenAddress is a fetch the guard refused.
var ErrForbiddenAddress = errors.New("crawler: address not allowed")

// Check says whether addr may be contacted.
func (g Guard) Check(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, p := range g.Allow {
		if p.Contains(addr) {
			return nil
		}
	}
	if addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() ||
		addr.IsMulticast() || addr.IsUnspecified() || addr.IsInterfaceLocalMulticast() || !addr.IsValid() {
		return fmt.Errorf("%w: %v", ErrForbiddenAddress, addr)
	}
	return nil
}

// Dialer connects to a host:port by resolving the name through the cache
// and checking the address with the guard before connecting — the
// address checked is the address dialled, so a name cannot change its
// answer in between.
type Dialer struct {
	DNS   *DNSCache
	Guard Guard
	net   net.Dialer
}

// DialContext is http.Transport's DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if addrs, err = d.DNS.Resolve(ctx, host); err != nil {
		return nil, err
	}
	var last error
	for _, a := range addrs {
		if err := d.Guard.Check(a); err != nil {
			last = err
			continue
		}
		c, err := d.net.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}
