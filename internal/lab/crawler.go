package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/crawler"
	"github.com/scalelab/scalelab/internal/crawler/testweb"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/plot"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// The crawler experiment: one synthetic web crawled again and again, each
// time with a longer per-host delay, from every host's home page at once.
// Its lesson is that a polite crawl's length is set by politeness, not by
// the crawler's fetchers: a host allows one fetch at a time and a delay
// between them, so no crawl can end before its busiest host's fetches,
// end to end with their delays (the politeness floor) — and the web's own
// log shows whether the crawler kept to it.

// CrawlerOptions shape one run.
type CrawlerOptions struct {
	Hosts, Pages int
	Delays       []time.Duration
	Fetchers     int
	BaseIP       string
}

func crawlerExperiment() Experiment {
	return Experiment{
		Name: "crawler", System: "crawler",
		Summary: "one synthetic web crawled with longer and longer per-host delays: pages/s against the politeness limit hosts ÷ (fetch + delay), violations counted by the web",
		Quick:   map[string]string{"hosts": "20", "pages": "15", "delays": "10ms,80ms"},
		Bind: func(fs *pflag.FlagSet) Runner {
			o := CrawlerOptions{Fetchers: 64, BaseIP: "127.29.0.0"}
			var delays string
			fs.IntVar(&o.Hosts, "hosts", 50, "the web's hosts")
			fs.IntVar(&o.Pages, "pages", 30, "ordinary pages per host")
			fs.StringVar(&delays, "delays", "10ms,40ms,160ms", "the per-host delays to crawl with, one trial each")
			fs.IntVar(&o.Fetchers, "fetchers", o.Fetchers, "the crawler's fetchers")
			fs.StringVar(&o.BaseIP, "base-ip", o.BaseIP, "the web's hosts listen on this address + i + 1 (IPv4 loopback)")
			return func(ctx context.Context, env Env) (*Report, error) {
				o.Delays = nil
				for _, d := range strings.Split(delays, ",") {
					v, err := time.ParseDuration(strings.TrimSpace(d))
					if err != nil || v < 0 || v > 5*time.Second {
						return nil, apperr.Usagef("--delays: durations from 0 to 5s, like 10ms,40ms")
					}
					o.Delays = append(o.Delays, v)
				}
				return runCrawler(ctx, env, o)
			}
		},
	}
}

// crawlTrial is one crawl's figures.
type crawlTrial struct {
	Delay   time.Duration
	Pages   int     // ordinary pages the web served
	Seconds float64 // first fetch's start to last fetch's end
	FetchMS float64 // median time a page's fetch took, as the web saw it
	// FloorS is the politeness floor: the busiest host's fetches (as the
	// web timed them) end to end, with the delay between each two.
	FloorS     float64
	Busiest    string
	BusiestN   int
	Robots     int
	Politeness int
	Duplicates int
}

func (t crawlTrial) rate() float64 {
	if t.Seconds <= 0 {
		return 0
	}
	return float64(t.Pages) / t.Seconds
}

// limit is the politeness limit: every host fetched back to back, a
// fetch and a delay each time.
func (t crawlTrial) limit(hosts int) float64 {
	return float64(hosts) / (t.FetchMS/1000 + t.Delay.Seconds())
}

func runCrawler(ctx context.Context, env Env, o CrawlerOptions) (*Report, error) {
	base, err := netip.ParseAddr(o.BaseIP)
	if err != nil || !base.Is4() || !base.IsLoopback() {
		return nil, apperr.Usagef("--base-ip: an IPv4 loopback address")
	}
	if o.Hosts < 2 || o.Hosts > 2000 || o.Pages < 2 || o.Pages > 1000 || len(o.Delays) == 0 || o.Fetchers < 1 || o.Fetchers > 1024 {
		return nil, apperr.Usagef("want 2 ≤ --hosts ≤ 2000, 2 ≤ --pages ≤ 1000, 1 ≤ --fetchers ≤ 1024, at least one delay")
	}
	// Each trial's store and bodies are working files: the report keeps
	// the figures.
	work := filepath.Join(env.Dir, "work")
	_ = os.RemoveAll(work)
	defer os.RemoveAll(work)
	webCfg := testweb.DefaultConfig()
	webCfg.Hosts, webCfg.PagesPerHost = o.Hosts, o.Pages
	webCfg.Slow = 2 * time.Second // past the crawler's fetch timeout: a timing-out robots.txt times out
	logger := slog.New(slog.DiscardHandler)
	var trials []crawlTrial
	for _, d := range o.Delays {
		// The Crawl-delay of the hosts that ask for one follows the trial's
		// delay, so that one delay binds every host.
		webCfg.CrawlDelay = d
		web, err := testweb.New(webCfg)
		if err != nil {
			return nil, err
		}
		srv, err := testweb.Start(web, testweb.ServeConfig{BaseIP: base}, logger)
		if err != nil {
			return nil, err
		}
		t, err := crawlOnce(ctx, env, o, srv, d, len(trials))
		srv.Close()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(env.Log, "delay %-7v %5d pages in %6.2f s (%6.1f pages/s); politeness floor %6.2f s (%s, %d fetches); violations: %d robots, %d politeness, %d duplicate\n",
			d, t.Pages, t.Seconds, t.rate(), t.FloorS, t.Busiest, t.BusiestN, t.Robots, t.Politeness, t.Duplicates)
		trials = append(trials, t)
	}
	rep := crawlerReport(o, trials)
	var groups []string
	var took, floor []float64
	for _, t := range trials {
		groups = append(groups, t.Delay.String())
		took, floor = append(took, t.Seconds), append(floor, t.FloorS)
	}
	rep.Plots = map[string]string{"length.svg": plot.Bars{Title: fmt.Sprintf("%d hosts: the crawl's length against its politeness floor, by per-host delay", o.Hosts),
		YLabel: "s", Groups: groups, Series: []string{"crawl", "busiest host's fetches and delays"}, Values: [][]float64{took, floor}}.SVG()}
	var b strings.Builder
	fmt.Fprintf(&b, "# The crawler: politeness sets the pace\n\nA synthetic web of %d hosts × %d pages (with its hazards: robots.txt rules, delays, failures, traps), crawled from every home page by %d fetchers, once per delay.\n\n",
		o.Hosts, o.Pages, o.Fetchers)
	b.WriteString("| delay | pages | seconds | pages/s | politeness floor s | busiest host | its fetches | all hosts ÷ (fetch + delay), pages/s | robots | politeness | duplicates |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range trials {
		fmt.Fprintf(&b, "| %v | %d | %.2f | %.1f | %.2f | %s | %d | %.0f | %d | %d | %d |\n", t.Delay, t.Pages, t.Seconds, t.rate(), t.FloorS, t.Busiest, t.BusiestN,
			t.limit(o.Hosts), t.Robots, t.Politeness, t.Duplicates)
	}
	b.WriteString("\n" + lessonMarkdown(rep))
	rep.Body = b.String()
	return rep, nil
}

func crawlOnce(ctx context.Context, env Env, o CrawlerOptions, srv *testweb.Server, delay time.Duration, n int) (crawlTrial, error) {
	dns, err := srv.ServeDNS("127.0.0.1:0")
	if err != nil {
		return crawlTrial{}, err
	}
	defer dns.Close()
	dir := filepath.Join(env.Dir, "work", "trial-"+strconv.Itoa(n))
	db, err := sqldb.Open(ctx, "", dir)
	if err != nil {
		return crawlTrial{}, err
	}
	defer db.Close()
	blobs, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		return crawlTrial{}, err
	}
	defer blobs.Close()
	cfg := crawler.DefaultEngineConfig()
	cfg.DNSServer = dns.Addr()
	cfg.AllowNets = []netip.Prefix{netip.PrefixFrom(srv.Addr(0), 16).Masked()}
	cfg.Fetch = crawler.FetchConfig{Timeout: time.Second, MaxBody: 256 << 10}
	cfg.Lease = 4 * time.Second
	var next int64
	eng, err := crawler.NewEngine(ctx, db, blobs, cfg, slog.New(slog.DiscardHandler), func() (int64, error) { next++; return next, nil })
	if err != nil {
		return crawlTrial{}, err
	}
	defer eng.Close()
	var seeds []string
	for i := range srv.Web().Config().Hosts {
		seeds = append(seeds, srv.Web().HomeURL(i))
	}
	id, err := eng.Create(ctx, crawler.CrawlConfig{Seeds: seeds, DelayMS: int(delay.Milliseconds()), Fetchers: o.Fetchers, MaxPerPattern: 10})
	if err != nil {
		return crawlTrial{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := eng.Wait(wctx, id); err != nil {
		return crawlTrial{}, fmt.Errorf("crawl with delay %v: %w", delay, err)
	}
	fetches := srv.Log().Fetches()
	rep := srv.Web().Check(fetches, testweb.Rules{Delay: delay})
	t := crawlTrial{Delay: delay, Pages: rep.Pages, Robots: rep.Robots, Politeness: rep.Politeness, Duplicates: rep.Duplicates}
	var first, last time.Time
	var ms []float64
	for _, f := range fetches {
		if first.IsZero() || f.Start.Before(first) {
			first = f.Start
		}
		if f.End.After(last) {
			last = f.End
		}
		if strings.HasPrefix(f.Path, "/p/") {
			ms = append(ms, float64(f.End.Sub(f.Start).Microseconds())/1000)
		}
	}
	t.Seconds = last.Sub(first).Seconds()
	t.FetchMS = median(ms)
	busy, count := map[int]time.Duration{}, map[int]int{}
	for _, f := range fetches {
		busy[f.Host] += f.End.Sub(f.Start)
		count[f.Host]++
	}
	for h, d := range busy {
		floor := (d + time.Duration(count[h]-1)*delay).Seconds()
		if floor > t.FloorS {
			t.FloorS, t.Busiest, t.BusiestN = floor, testweb.HostName(h), count[h]
		}
	}
	return t, nil
}

// crawlerReport states the lesson from the trials' figures.
func crawlerReport(o CrawlerOptions, trials []crawlTrial) *Report {
	r := &Report{Experiment: "crawler", System: "crawler", Passed: true, Figures: map[string]float64{}}
	violations := 0
	for _, t := range trials {
		k := "delay_" + t.Delay.String() + "_"
		r.Figures[k+"pages_per_s"] = t.rate()
		r.Figures[k+"limit"] = t.limit(o.Hosts)
		r.Figures[k+"violations"] = float64(t.Robots + t.Politeness + t.Duplicates)
		violations += t.Robots + t.Politeness + t.Duplicates
	}
	if violations > 0 {
		r.Passed = false
		r.Lesson = append(r.Lesson, fmt.Sprintf("THE CRAWLER WAS NOT POLITE: the web counted %d violations (see the table).", violations))
	} else {
		r.Lesson = append(r.Lesson, "The web's own log counted 0 robots, 0 politeness and 0 duplicate violations in every trial.")
	}
	for _, t := range trials {
		r.Figures["delay_"+t.Delay.String()+"_floor_s"] = t.FloorS
		r.Figures["delay_"+t.Delay.String()+"_seconds"] = t.Seconds
		if t.FloorS <= 0 {
			continue
		}
		r.Lesson = append(r.Lesson, fmt.Sprintf("Delay %v: the crawl took %.2f s (%.1f pages/s); its busiest host, %s, needed %.2f s for its %d fetches end to end with the delays between them — the crawl took %.2f× that floor. Were every host busy all the time, %d hosts would allow %.0f pages/s; they are not, because a host's pages are found one link at a time.",
			t.Delay, t.Seconds, t.rate(), t.Busiest, t.FloorS, t.BusiestN, t.Seconds/t.FloorS, o.Hosts, t.limit(o.Hosts)))
	}
	if len(trials) >= 2 {
		a, z := trials[0], trials[len(trials)-1]
		if a.Seconds > 0 && z.Seconds > 0 && a.FloorS > 0 {
			r.Figures["slowdown"] = z.Seconds / a.Seconds
			r.Lesson = append(r.Lesson, fmt.Sprintf("From a %v to a %v delay the crawl's length went from %.2f to %.2f s (%.1f×) as its politeness floor went from %.2f to %.2f s (%.1f×): the length of a polite crawl follows its slowest host's floor, which more fetchers cannot shorten — only spreading the pages over more hosts can.",
				a.Delay, z.Delay, a.Seconds, z.Seconds, z.Seconds/a.Seconds, a.FloorS, z.FloorS, z.FloorS/a.FloorS))
		}
	}
	return r
}
