package testweb

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fetch is one request the web answered, as the server saw it: from the
// arrival of its head to the end of its answer.
type Fetch struct {
	Host   int       `json:"host"`
	Path   string    `json:"path"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Status int       `json:"status"`
	Bytes  int64     `json:"bytes"`
	Agent  string    `json:"agent,omitempty"`
}

// FetchLog is every fetch, in the order they ended.
type FetchLog struct {
	mu      sync.Mutex
	fetches []Fetch
}

func (l *FetchLog) add(f Fetch) {
	l.mu.Lock()
	l.fetches = append(l.fetches, f)
	l.mu.Unlock()
}

// Fetches is a copy of the log.
func (l *FetchLog) Fetches() []Fetch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Fetch(nil), l.fetches...)
}

// Len is the number of fetches logged.
func (l *FetchLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.fetches)
}

// Reset empties the log (between crawls of one server).
func (l *FetchLog) Reset() {
	l.mu.Lock()
	l.fetches = nil
	l.mu.Unlock()
}

// Rules are what a crawl is checked against: the crawler's own delay
// between two fetches of a host (the web's Crawl-delay, where larger,
// wins) and the slack allowed for timer granularity.
type Rules struct {
	Delay time.Duration
	Slack time.Duration
}

// Report counts what a crawl did wrong, from the server's side.
type Report struct {
	Fetches    int `json:"fetches"`
	Pages      int `json:"pages"` // distinct ordinary pages fetched (home and /p/)
	Hosts      int `json:"hosts"` // hosts contacted
	Robots     int `json:"robots_violations"`
	Politeness int `json:"politeness_violations"` // a fetch sooner than the delay after the host's previous one ended, or during it
	Duplicates int `json:"duplicate_fetches"`     // a path of a host fetched again (robots.txt included)
	// Examples of each kind of violation, a few at most.
	Examples []string `json:"examples,omitempty"`
}

// OK is true when nothing was violated.
func (r Report) OK() bool { return r.Robots == 0 && r.Politeness == 0 && r.Duplicates == 0 }

func (r Report) String() string {
	return fmt.Sprintf("%d fetches, %d pages, %d hosts: %d robots, %d politeness, %d duplicate", r.Fetches, r.Pages, r.Hosts, r.Robots, r.Politeness, r.Duplicates)
}

// Check counts the violations in a log of fetches of w.
func (w *Web) Check(fetches []Fetch, rules Rules) Report {
	rep := Report{Fetches: len(fetches)}
	note := func(format string, args ...any) {
		if len(rep.Examples) < 10 {
			rep.Examples = append(rep.Examples, fmt.Sprintf(format, args...))
		}
	}
	byHost := map[int][]Fetch{}
	seen := map[string]bool{}
	for _, f := range fetches {
		byHost[f.Host] = append(byHost[f.Host], f)
		key := HostName(f.Host) + f.Path
		if seen[key] {
			rep.Duplicates++
			note("duplicate: %s", key)
		} else if f.Path == "/" || strings.HasPrefix(f.Path, "/p/") {
			rep.Pages++
		}
		seen[key] = true
		if !w.Allowed(f.Host, f.Path) {
			rep.Robots++
			note("robots (%s): %s", w.RobotsOf(f.Host), key)
		}
	}
	rep.Hosts = len(byHost)
	for host, fs := range byHost {
		sort.Slice(fs, func(a, b int) bool { return fs[a].Start.Before(fs[b].Start) })
		delay := max(rules.Delay, w.DelayOf(host))
		for k := 1; k < len(fs); k++ {
			prev, cur := fs[k-1], fs[k]
			if cur.Start.Add(rules.Slack).Before(prev.End.Add(delay)) {
				rep.Politeness++
				note("politeness: %s%s started %v after %s ended (delay %v)", HostName(host), cur.Path, cur.Start.Sub(prev.End), prev.Path, delay)
			}
		}
	}
	return rep
}
