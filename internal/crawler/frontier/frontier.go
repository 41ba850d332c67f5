package frontier

import (
	"container/heap"
	"errors"
	"time"
)

// Item is one URL in the frontier.
type Item struct {
	URL      string
	Host     string // the politeness key: lower-case host[:port]
	Priority int    // 0 is the most urgent, up to Config.Levels-1
	// The caller's, carried along: links from a seed, and redirects
	// followed to reach this URL.
	Depth, Redirects int
}

// Config bounds and paces the frontier.
type Config struct {
	Levels     int           // front queues (priority levels), ≥ 1
	BackQueues int           // hosts with a back queue at once, ≥ 1
	Delay      time.Duration // between the end of a fetch and the next start, per host
	PerHost    int           // URLs held per host at most (0: no cap)
	Max        int           // URLs held in all (0: no cap)
	// Starve: after this many refills from more urgent levels while a
	// less urgent one waits, the least recently served level goes first
	// once (0: 8).
	Starve int
}

// Reasons Add refuses a URL.
var (
	ErrHostFull = errors.New("frontier: the host's quota is full")
	ErrFull     = errors.New("frontier: full")
	ErrInvalid  = errors.New("frontier: an item needs a URL, a host and a priority within the levels")
)

// Frontier is the URL frontier. It is not safe for concurrent use: its
// owner serialises calls (one mutex around it is enough; every call is
// O(log hosts)).
type Frontier struct {
	cfg    Config
	front  []fifo           // by priority level
	served []int            // refill round at which each level was last served
	round  int              // refills so far
	hosts  map[string]*host // every host with URLs held, busy, or a delay of its own
	active int              // hosts with a back queue
	ready  hostHeap         // back queues not busy, by next allowed time
	idle   hostHeap         // hosts with nothing held whose next time is to come
	held   int              // URLs in front and back queues
}

type host struct {
	name    string
	back    fifo // nil when the host has no back queue
	hasBack bool
	queued  int // this host's URLs in front and back queues
	busy    bool
	next    time.Time     // no fetch starts before this
	delay   time.Duration // 0: Config.Delay
	index   int           // in the ready heap, -1 when not there
	idleAt  int           // in the idle heap, -1 when not there
}

// New returns an empty frontier.
func New(cfg Config) (*Frontier, error) {
	if cfg.Levels < 1 || cfg.BackQueues < 1 || cfg.Delay < 0 || cfg.PerHost < 0 || cfg.Max < 0 {
		return nil, errors.New("frontier: levels and back queues must be ≥ 1, delay and caps ≥ 0")
	}
	if cfg.Starve <= 0 {
		cfg.Starve = 8
	}
	return &Frontier{cfg: cfg, front: make([]fifo, cfg.Levels), served: make([]int, cfg.Levels), hosts: map[string]*host{},
		ready: hostHeap{less: readyFirst, at: func(h *host) *int { return &h.index }},
		idle:  hostHeap{less: idleFirst, at: func(h *host) *int { return &h.idleAt }}}, nil
}

// Len is the number of URLs held (queued, not being fetched).
func (f *Frontier) Len() int { return f.held }

// HostLen is the number of URLs held for one host.
func (f *Frontier) HostLen(name string) int {
	if h := f.hosts[name]; h != nil {
		return h.queued
	}
	return 0
}

// Hosts is the number of hosts with URLs held or a fetch in progress.
func (f *Frontier) Hosts() int {
	n := 0
	for _, h := range f.hosts {
		if h.queued > 0 || h.busy {
			n++
		}
	}
	return n
}

// Add queues a URL in its priority's front queue.
func (f *Frontier) Add(it Item, now time.Time) error {
	if it.URL == "" || it.Host == "" || it.Priority < 0 || it.Priority >= f.cfg.Levels {
		return ErrInvalid
	}
	h := f.host(it.Host)
	switch {
	case f.cfg.PerHost > 0 && h.queued >= f.cfg.PerHost:
		return ErrHostFull
	case f.cfg.Max > 0 && f.held >= f.cfg.Max:
		return ErrFull
	}
	h.queued++
	f.held++
	f.front[it.Priority].push(it)
	f.refill(now)
	return nil
}

// SetDelay sets a host's own delay between fetches (robots.txt's
// Crawl-delay); below Config.Delay it has no effect.
func (f *Frontier) SetDelay(name string, d time.Duration) {
	h := f.host(name)
	h.delay = d
}

// DelayOf is the delay the frontier keeps for a host.
func (f *Frontier) DelayOf(name string) time.Duration {
	if h := f.hosts[name]; h != nil {
		return max(h.delay, f.cfg.Delay)
	}
	return f.cfg.Delay
}

// Next hands out the URL to fetch now, marking its host busy; or, when
// none may be fetched yet, reports how long until one may (0 when no
// queued URL waits on time alone).
func (f *Frontier) Next(now time.Time) (Item, bool, time.Duration) {
	f.prune(now)
	f.refill(now)
	if f.ready.Len() == 0 {
		return Item{}, false, 0
	}
	h := f.ready.hosts[0]
	if h.next.After(now) {
		return Item{}, false, h.next.Sub(now)
	}
	heap.Pop(&f.ready)
	it := h.back.pop()
	h.queued--
	f.held--
	h.busy = true
	return it, true, 0
}

// Done ends the fetch of a URL of host: the host may be fetched again
// once its delay has passed since now.
func (f *Frontier) Done(name string, now time.Time) {
	h := f.hosts[name]
	if h == nil || !h.busy {
		return
	}
	h.busy = false
	h.next = now.Add(max(h.delay, f.cfg.Delay))
	f.settle(h, now)
}

// Requeue gives back a URL Next handed out and ends its host's fetch
// without a delay (nothing was fetched). It goes to the head of the host's
// back queue, so it is the host's next URL.
func (f *Frontier) Requeue(it Item, now time.Time) {
	h := f.hosts[it.Host]
	if h == nil || !h.busy {
		return
	}
	h.busy = false
	h.back.pushFront(it)
	h.queued++
	f.held++
	f.settle(h, now)
}

// Retry gives back a URL Next handed out after its host was contacted
// for something else (its robots.txt): the URL is the host's next, and
// the host's delay runs from now.
func (f *Frontier) Retry(it Item, now time.Time) {
	h := f.hosts[it.Host]
	if h == nil || !h.busy {
		return
	}
	h.back.pushFront(it)
	h.queued++
	f.held++
	f.Done(it.Host, now)
}

// Cancel ends a fetch that never contacted the host (a URL its robots.txt
// forbids, dropped): no delay.
func (f *Frontier) Cancel(name string, now time.Time) {
	h := f.hosts[name]
	if h == nil || !h.busy {
		return
	}
	h.busy = false
	f.settle(h, now)
}

// Hold keeps a host with URLs held from being fetched before until (a
// crawler that restarts does not know when it last fetched the host).
func (f *Frontier) Hold(name string, until time.Time) {
	h := f.hosts[name]
	if h == nil || !until.After(h.next) {
		return
	}
	h.next = until
	if h.index >= 0 {
		heap.Fix(&f.ready, h.index)
	}
}

// Drop forgets every URL held for a host (an instance that no longer owns
// it) and returns them; a fetch in progress is not affected.
func (f *Frontier) Drop(name string, now time.Time) []Item {
	h := f.hosts[name]
	if h == nil {
		return nil
	}
	var out []Item
	for p := range f.front {
		out = append(out, f.front[p].removeHost(name)...)
	}
	out = append(out, h.back.drain()...)
	f.held -= h.queued
	h.queued = 0
	if h.index >= 0 {
		heap.Remove(&f.ready, h.index)
	}
	if h.hasBack && !h.busy {
		h.hasBack = false
		f.active--
	}
	f.forget(h, now)
	f.refill(now)
	return out
}

// settle puts a host that is not busy back where it belongs: in the ready
// heap while it has URLs, or out of the back queues when it has none.
func (f *Frontier) settle(h *host, now time.Time) {
	if h.back.len() > 0 {
		heap.Push(&f.ready, h)
		return
	}
	if h.hasBack {
		h.hasBack = false
		f.active--
	}
	f.forget(h, now)
	f.refill(now)
}

// forget removes a host with nothing held and not busy once its next
// time has passed; until then it waits in the idle heap, because a URL
// of it added meanwhile must wait for that time too. A host with a delay
// of its own (from its robots.txt) is kept.
func (f *Frontier) forget(h *host, now time.Time) {
	if h.queued > 0 || h.busy || h.hasBack || h.delay > 0 {
		return
	}
	if h.next.After(now) {
		if h.idleAt < 0 {
			heap.Push(&f.idle, h)
		} else {
			heap.Fix(&f.idle, h.idleAt)
		}
		return
	}
	if h.idleAt >= 0 {
		heap.Remove(&f.idle, h.idleAt)
	}
	delete(f.hosts, h.name)
}

// prune forgets the idle hosts whose next time has passed.
func (f *Frontier) prune(now time.Time) {
	for f.idle.Len() > 0 && !f.idle.hosts[0].next.After(now) {
		h := heap.Pop(&f.idle).(*host)
		f.forget(h, now)
	}
}

func (f *Frontier) host(name string) *host {
	h := f.hosts[name]
	if h == nil {
		h = &host{name: name, index: -1, idleAt: -1}
		f.hosts[name] = h
	}
	return h
}

// refill moves URLs from the front queues to back queues while a back
// queue is free.
func (f *Frontier) refill(now time.Time) {
	for f.active < f.cfg.BackQueues {
		p := f.pickLevel()
		if p < 0 {
			return
		}
		f.round++
		f.served[p] = f.round
		it := f.front[p].pop()
		h := f.hosts[it.Host]
		h.back.push(it)
		if h.hasBack {
			continue
		}
		h.hasBack = true
		f.active++
		if !h.busy {
			if h.next.Before(now) {
				h.next = now
			}
			heap.Push(&f.ready, h)
		}
	}
}

// pickLevel is the most urgent non-empty level, unless a less urgent one
// has waited Starve refills: then the one waiting longest.
func (f *Frontier) pickLevel() int {
	first, starved := -1, -1
	for p := range f.front {
		if f.front[p].len() == 0 {
			continue
		}
		if first < 0 {
			first = p
			continue
		}
		if f.round-f.served[p] >= f.cfg.Starve && (starved < 0 || f.served[p] < f.served[starved]) {
			starved = p
		}
	}
	if starved >= 0 {
		return starved
	}
	return first
}

// hostHeap is a heap of hosts in less's order, each host keeping its
// place in the field at points to, so that it can be fixed or removed
// where it stands.
type hostHeap struct {
	hosts []*host
	less  func(a, b *host) bool
	at    func(h *host) *int
}

func (q *hostHeap) Len() int           { return len(q.hosts) }
func (q *hostHeap) Less(i, j int) bool { return q.less(q.hosts[i], q.hosts[j]) }
func (q *hostHeap) Swap(i, j int) {
	q.hosts[i], q.hosts[j] = q.hosts[j], q.hosts[i]
	*q.at(q.hosts[i]), *q.at(q.hosts[j]) = i, j
}
func (q *hostHeap) Push(x any) {
	h := x.(*host)
	*q.at(h) = len(q.hosts)
	q.hosts = append(q.hosts, h)
}
func (q *hostHeap) Pop() any {
	n := len(q.hosts) - 1
	h := q.hosts[n]
	q.hosts[n] = nil
	q.hosts = q.hosts[:n]
	*q.at(h) = -1
	return h
}

// readyFirst orders back queues by the time their host may be fetched,
// then by the priority of their next URL.
func readyFirst(a, b *host) bool {
	if !a.next.Equal(b.next) {
		return a.next.Before(b.next)
	}
	return a.back.head().Priority < b.back.head().Priority
}

// idleFirst orders hosts with nothing held by their next allowed time.
func idleFirst(a, b *host) bool { return a.next.Before(b.next) }
