package testweb

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Config is a synthetic web: its size, its seed and its pace.
type Config struct {
	Hosts        int // virtual hosts host0.test … host{N-1}.test
	PagesPerHost int // ordinary pages per host
	Seed         uint64
	// CrawlDelay is what the robots.txt of the hosts that ask for a delay
	// asks for (one host in ten).
	CrawlDelay time.Duration
	// Slow is how long the slow page and a robots.txt that times out take.
	Slow time.Duration
	// HugeBytes is the size of the huge page.
	HugeBytes int
}

// DefaultConfig is a small web for tests: 50 hosts of 20 pages.
func DefaultConfig() Config {
	return Config{Hosts: 50, PagesPerHost: 20, Seed: 1, CrawlDelay: 100 * time.Millisecond, Slow: 3 * time.Second, HugeBytes: 8 << 20}
}

// Robots is how a host answers /robots.txt.
type Robots int

const (
	RobotsRules   Robots = iota // 200 with rules (Disallow: /private/)
	RobotsDelay                 // 200 with the rules and a Crawl-delay
	RobotsMissing               // 404: everything may be fetched
	RobotsError                 // 500: nothing may be fetched (RFC 9309 §2.3.1.4)
	RobotsTimeout               // answers after Config.Slow: as unreachable
	RobotsOpen                  // 200, an empty file
)

func (r Robots) String() string {
	return [...]string{"rules", "crawl-delay", "missing", "error", "timeout", "open"}[r]
}

// Web is the synthetic web's model: which hosts exist, what each
// answers at each path, which links each page holds. Everything follows
// from the Config, so a checker and the server agree without talking.
type Web struct {
	cfg  Config
	port int       // the hosts' port, set once by the server before it serves
	zipf []float64 // cumulative Zipf weights over hosts (power-law in-degree)
}

// New validates cfg and builds the model.
func New(cfg Config) (*Web, error) {
	if cfg.Hosts < 1 || cfg.Hosts > 65_000 || cfg.PagesPerHost < 1 || cfg.PagesPerHost > 1_000_000 {
		return nil, fmt.Errorf("testweb: hosts must be 1–65000 and pages per host 1–1000000, got %d and %d", cfg.Hosts, cfg.PagesPerHost)
	}
	if cfg.CrawlDelay < 0 || cfg.Slow < 0 || cfg.HugeBytes < 0 {
		return nil, fmt.Errorf("testweb: delays and sizes must be ≥ 0")
	}
	w := &Web{cfg: cfg, zipf: make([]float64, cfg.Hosts)}
	sum := 0.0
	for i := range w.zipf {
		sum += 1 / math.Pow(float64(i+1), 1.1)
		w.zipf[i] = sum
	}
	for i := range w.zipf {
		w.zipf[i] /= sum
	}
	return w, nil
}

// Config is the web's configuration.
func (w *Web) Config() Config { return w.cfg }

// HostName is host i's name.
func HostName(i int) string { return "host" + strconv.Itoa(i) + ".test" }

// HostIndex parses a host name (with or without a port); ok is false for
// a host this web does not have.
func (w *Web) HostIndex(name string) (int, bool) {
	name, _, _ = strings.Cut(strings.ToLower(name), ":")
	rest, ok := strings.CutPrefix(name, "host")
	if !ok {
		return 0, false
	}
	num, ok := strings.CutSuffix(rest, ".test")
	i, err := strconv.Atoi(num)
	if !ok || err != nil || i < 0 || i >= w.cfg.Hosts || strconv.Itoa(i) != num {
		return 0, false
	}
	return i, true
}

// RobotsOf is how host i answers /robots.txt.
func (w *Web) RobotsOf(i int) Robots {
	switch i % 10 {
	case 3:
		return RobotsDelay
	case 5:
		return RobotsMissing
	case 7:
		if i%20 == 7 {
			return RobotsError
		}
		return RobotsTimeout
	case 9:
		return RobotsOpen
	}
	return RobotsRules
}

// Hazardous reports whether host i carries the hazards page: duplicates,
// redirects, errors, slow and endless answers, non-HTML, a huge page and
// a calendar trap. Host 0 and one host in five do.
func (w *Web) Hazardous(i int) bool { return i%5 == 0 }

// Allowed reports whether a path of host i may be fetched under its
// robots.txt as this web serves it (RFC 9309: a missing file allows
// everything; an error or a timeout forbids everything).
func (w *Web) Allowed(i int, path string) bool {
	if path == "/robots.txt" {
		return true
	}
	switch w.RobotsOf(i) {
	case RobotsError, RobotsTimeout:
		return false
	case RobotsRules, RobotsDelay:
		return !strings.HasPrefix(path, "/private/")
	}
	return true
}

// DelayOf is the delay host i's robots.txt asks for (0: none).
func (w *Web) DelayOf(i int) time.Duration {
	if w.RobotsOf(i) == RobotsDelay {
		return w.cfg.CrawlDelay
	}
	return 0
}

// robotsTxt is the body of a host's robots.txt when it has one.
func (w *Web) robotsTxt(i int) string {
	switch w.RobotsOf(i) {
	case RobotsOpen:
		return ""
	case RobotsDelay:
		return fmt.Sprintf("User-agent: *\nDisallow: /private/\nCrawl-delay: %g\n", w.cfg.CrawlDelay.Seconds())
	}
	return "User-agent: *\nDisallow: /private/\n"
}

// rng is the random stream of one page: the same every time.
func (w *Web) rng(host int, path string) *rand.Rand {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s", host, path)
	return rand.New(rand.NewPCG(w.cfg.Seed, h.Sum64()))
}

// zipfHost draws a host with power-law popularity.
func (w *Web) zipfHost(r *rand.Rand) int {
	x := r.Float64()
	lo, hi := 0, len(w.zipf)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if w.zipf[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Origin is host i's scheme, name and port.
func (w *Web) Origin(i int) string {
	if w.port == 0 || w.port == 80 {
		return "http://" + HostName(i)
	}
	return "http://" + HostName(i) + ":" + strconv.Itoa(w.port)
}

// PageURL is the URL of ordinary page j of host i.
func (w *Web) PageURL(i, j int) string { return w.Origin(i) + "/p/" + strconv.Itoa(j) + ".html" }

// HomeURL is host i's home page.
func (w *Web) HomeURL(i int) string { return w.Origin(i) + "/" }

// Links is an ordinary page's (or the home page's, j = -1) outgoing links:
// the next page of its host and the next two hosts' homes (so that every
// page a polite crawler may fetch is reachable from host0's home), then links drawn with power-law
// popularity, most within the host.
func (w *Web) Links(i, j int) []string {
	var out []string
	if j+1 < w.cfg.PagesPerHost {
		out = append(out, w.PageURL(i, j+1))
	}
	if j == -1 {
		// The next two hosts' homes: a host whose robots.txt forbids
		// everything does not cut the chain.
		for k := i + 1; k <= i+2 && k < w.cfg.Hosts; k++ {
			out = append(out, w.HomeURL(k))
		}
		if w.Hazardous(i) {
			out = append(out, w.Origin(i)+"/hazards.html")
		}
		if w.RobotsOf(i) == RobotsRules || w.RobotsOf(i) == RobotsDelay {
			out = append(out, w.Origin(i)+"/private/1.html")
		}
	}
	r := w.rng(i, "links/"+strconv.Itoa(j))
	for k, n := 0, 3+r.IntN(6); k < n; k++ {
		h := i
		if r.IntN(10) < 3 {
			h = w.zipfHost(r)
		}
		// Low page numbers are the popular ones (their in-degree follows a
		// power law too).
		p := int(float64(w.cfg.PagesPerHost) * math.Pow(r.Float64(), 3))
		out = append(out, w.PageURL(h, min(p, w.cfg.PagesPerHost-1)))
	}
	return out
}

var vocabulary = strings.Fields(`the crawler fetched a page from every host while the frontier kept each
queue polite and the robots file said which paths were open to it distributed systems replicate
state across machines so that one failure does not lose data a quorum of replicas agrees before
an answer leaves consensus orders every write the log grows the snapshot trims it caches keep hot
keys near the reader queues smooth a spike workers drain them partitions split the keyspace hashing
places keys on a ring gossip spreads membership heartbeats detect the dead leases expire clocks
drift vectors track causality idempotent requests make retries safe backpressure keeps a producer
from drowning a consumer latency tails grow under load throughput saturates at the bottleneck`)

// text is n words of page prose, from its own random stream.
func text(r *rand.Rand, n int) string {
	var b strings.Builder
	for k := 0; k < n; k++ {
		if k > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[r.IntN(len(vocabulary))])
	}
	return b.String()
}
