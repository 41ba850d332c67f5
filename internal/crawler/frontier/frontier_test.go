package frontier

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustNew(t *testing.T, cfg Config) *Frontier {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustAdd(t *testing.T, f *Frontier, now time.Time, items ...Item) {
	t.Helper()
	for _, it := range items {
		if err := f.Add(it, now); err != nil {
			t.Fatalf("add %v: %v", it, err)
		}
	}
}

func item(host string, n, prio int) Item {
	return Item{URL: fmt.Sprintf("http://%s/%d", host, n), Host: host, Priority: prio}
}

// next hands out a URL at now or fails.
func next(t *testing.T, f *Frontier, now time.Time) Item {
	t.Helper()
	it, ok, wait := f.Next(now)
	if !ok {
		t.Fatalf("no URL at %v (wait %v)", now.Sub(t0), wait)
	}
	return it
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{{}, {Levels: 1}, {BackQueues: 1}, {Levels: 1, BackQueues: 1, Delay: -1}, {Levels: 1, BackQueues: 1, PerHost: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestAddRefuses(t *testing.T) {
	f := mustNew(t, Config{Levels: 2, BackQueues: 1, PerHost: 2, Max: 3})
	for _, it := range []Item{{Host: "a"}, {URL: "u"}, {URL: "u", Host: "a", Priority: 2}, {URL: "u", Host: "a", Priority: -1}} {
		if err := f.Add(it, t0); !errors.Is(err, ErrInvalid) {
			t.Errorf("Add(%+v) = %v, want ErrInvalid", it, err)
		}
	}
	mustAdd(t, f, t0, item("a", 1, 0), item("a", 2, 1))
	if err := f.Add(item("a", 3, 0), t0); !errors.Is(err, ErrHostFull) {
		t.Fatalf("third URL of a host capped at 2: %v", err)
	}
	mustAdd(t, f, t0, item("b", 1, 0))
	if err := f.Add(item("c", 1, 0), t0); !errors.Is(err, ErrFull) {
		t.Fatalf("fourth URL of a frontier capped at 3: %v", err)
	}
	if f.Len() != 3 || f.HostLen("a") != 2 {
		t.Fatalf("len %d, host a %d", f.Len(), f.HostLen("a"))
	}
}

// One fetch per host at a time, and the next starts only after the delay
// since the end of the previous one.
func TestPoliteness(t *testing.T) {
	f := mustNew(t, Config{Levels: 1, BackQueues: 4, Delay: time.Second})
	mustAdd(t, f, t0, item("a", 1, 0), item("a", 2, 0), item("b", 1, 0))
	first := next(t, f, t0)
	second := next(t, f, t0)
	if first.Host == second.Host {
		t.Fatalf("two fetches of %s at once", first.Host)
	}
	if _, ok, wait := f.Next(t0); ok || wait != 0 {
		t.Fatalf("a's second URL while a is busy: ok %v, wait %v", ok, wait)
	}
	f.Done("a", t0.Add(300*time.Millisecond))
	if _, ok, wait := f.Next(t0.Add(400 * time.Millisecond)); ok || wait != 900*time.Millisecond {
		t.Fatalf("before a's delay: ok %v, wait %v (want 900ms)", ok, wait)
	}
	if it := next(t, f, t0.Add(1300*time.Millisecond)); it.URL != "http://a/2" {
		t.Fatalf("got %v", it)
	}
}

// A host whose back queue ran dry keeps its next time: a URL of it added
// just after its fetch waits for the delay.
func TestPolitenessSurvivesAnEmptyHost(t *testing.T) {
	f := mustNew(t, Config{Levels: 1, BackQueues: 1, Delay: time.Second})
	mustAdd(t, f, t0, item("a", 1, 0))
	next(t, f, t0)
	f.Done("a", t0.Add(100*time.Millisecond))
	mustAdd(t, f, t0.Add(200*time.Millisecond), item("a", 2, 0))
	if _, ok, wait := f.Next(t0.Add(200 * time.Millisecond)); ok || wait != 900*time.Millisecond {
		t.Fatalf("ok %v wait %v, want a wait of 900ms", ok, wait)
	}
	next(t, f, t0.Add(1100*time.Millisecond))
	// Once its time has passed, an idle host is forgotten.
	f.Done("a", t0.Add(1200*time.Millisecond))
	f.Next(t0.Add(3 * time.Second))
	if len(f.hosts) != 0 || f.idle.Len() != 0 {
		t.Fatalf("hosts %d, idle %d after everything passed", len(f.hosts), f.idle.Len())
	}
}

func TestCrawlDelay(t *testing.T) {
	f := mustNew(t, Config{Levels: 1, BackQueues: 2, Delay: 100 * time.Millisecond})
	f.SetDelay("slow", 5*time.Second)
	f.SetDelay("eager", time.Millisecond) // below the default: the default holds
	if f.DelayOf("slow") != 5*time.Second || f.DelayOf("eager") != 100*time.Millisecond || f.DelayOf("other") != 100*time.Millisecond {
		t.Fatalf("delays %v %v %v", f.DelayOf("slow"), f.DelayOf("eager"), f.DelayOf("other"))
	}
	mustAdd(t, f, t0, item("slow", 1, 0), item("slow", 2, 0))
	next(t, f, t0)
	f.Done("slow", t0)
	if _, _, wait := f.Next(t0.Add(time.Second)); wait != 4*time.Second {
		t.Fatalf("wait %v, want 4s", wait)
	}
}

// With every host ready, the more urgent URLs' hosts come first.
func TestPriorityOrdersHosts(t *testing.T) {
	f := mustNew(t, Config{Levels: 3, BackQueues: 1})
	mustAdd(t, f, t0, item("low", 1, 2), item("mid", 1, 1), item("high", 1, 0))
	// The first Add took the one back queue (it was free); after it, the
	// router serves the front queues in priority order.
	var got []string
	for i := 0; i < 3; i++ {
		it := next(t, f, t0)
		got = append(got, it.Host)
		f.Done(it.Host, t0)
	}
	if fmt.Sprint(got) != "[low high mid]" {
		t.Fatalf("order %v", got)
	}
}

// A less urgent level is served now and then even while urgent URLs keep
// coming.
func TestNoStarvation(t *testing.T) {
	f := mustNew(t, Config{Levels: 2, BackQueues: 1, Starve: 4})
	mustAdd(t, f, t0, item("low", 0, 1))
	lowAt := -1
	for i := 0; i < 20 && lowAt < 0; i++ {
		mustAdd(t, f, t0, item(fmt.Sprintf("h%d", i), i, 0))
		it := next(t, f, t0)
		f.Done(it.Host, t0)
		if it.Host == "low" {
			lowAt = i
		}
	}
	if lowAt < 0 || lowAt > 5 {
		t.Fatalf("the low-priority URL came at fetch %d", lowAt)
	}
}

// A host with thousands of URLs holds one back queue: the others' URLs
// go out while it waits for its delay.
func TestOneHostCannotCrowdOutTheOthers(t *testing.T) {
	f := mustNew(t, Config{Levels: 1, BackQueues: 3, Delay: time.Second})
	for i := 0; i < 5000; i++ {
		mustAdd(t, f, t0, item("big", i, 0))
	}
	for i := 0; i < 10; i++ {
		mustAdd(t, f, t0, item(fmt.Sprintf("small%d", i), 0, 0))
	}
	now := t0
	seen := map[string]int{}
	for fetches := 0; fetches < 12; {
		it, ok, wait := f.Next(now)
		if !ok {
			now = now.Add(max(wait, time.Millisecond))
			continue
		}
		seen[it.Host]++
		fetches++
		f.Done(it.Host, now.Add(10*time.Millisecond))
		now = now.Add(10 * time.Millisecond)
	}
	if seen["big"] > 2 || len(seen) < 10 {
		t.Fatalf("fetches by host in the first 12: %v", seen)
	}
}

func TestRequeueAndDrop(t *testing.T) {
	f := mustNew(t, Config{Levels: 1, BackQueues: 2, Delay: time.Hour})
	mustAdd(t, f, t0, item("a", 1, 0), item("a", 2, 0))
	it := next(t, f, t0)
	f.Requeue(it, t0)
	if again := next(t, f, t0); again.URL != "http://a/1" || it.URL != "http://a/1" {
		t.Fatalf("after a requeue of %v: %v, want it again, without a delay", it, again)
	}
	f.Done("a", t0)
	mustAdd(t, f, t0, item("b", 1, 0), item("b", 2, 0), item("c", 1, 0))
	dropped := f.Drop("b", t0)
	if len(dropped) != 2 || f.HostLen("b") != 0 || f.Len() != 2 {
		t.Fatalf("dropped %v; b holds %d, the frontier %d", dropped, f.HostLen("b"), f.Len())
	}
	if it := next(t, f, t0); it.Host != "c" {
		t.Fatalf("after dropping b: %v, want c's (a waits an hour)", it)
	}
}

// A random crawl: hosts, priorities, fetch lengths, delays and requeues
// drawn from a seed. Every URL added is handed out exactly once (not
// counting requeues); per host, fetches never overlap and each starts no
// sooner than the host's delay after the previous one ended.
func TestRandomCrawlIsPoliteAndComplete(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			cfg := Config{Levels: 1 + rng.IntN(4), BackQueues: 1 + rng.IntN(6), Delay: time.Duration(rng.IntN(200)) * time.Millisecond, Starve: 1 + rng.IntN(5)}
			f := mustNew(t, cfg)
			hosts := 1 + rng.IntN(30)
			for h := 0; h < hosts; h += 3 {
				f.SetDelay(fmt.Sprintf("h%d", h), time.Duration(rng.IntN(500))*time.Millisecond)
			}
			now := t0
			added, handed := map[string]bool{}, map[string]int{}
			type fetch struct {
				it  Item
				end time.Time
			}
			var inFlight []fetch
			lastEnd := map[string]time.Time{}
			busy := map[string]bool{}
			n := 0
			for step := 0; step < 4000; step++ {
				switch r := rng.IntN(10); {
				case r < 3 && n < 1500: // discover a URL
					h := fmt.Sprintf("h%d", rng.IntN(hosts))
					it := Item{URL: fmt.Sprintf("http://%s/%d", h, n), Host: h, Priority: rng.IntN(cfg.Levels)}
					n++
					if err := f.Add(it, now); err != nil {
						t.Fatal(err)
					}
					added[it.URL] = true
				case r < 7: // the fetchers ask for work
					it, ok, _ := f.Next(now)
					if !ok {
						break
					}
					if busy[it.Host] {
						t.Fatalf("%s handed out while %s is being fetched", it.URL, it.Host)
					}
					if end, ok := lastEnd[it.Host]; ok && now.Before(end.Add(f.DelayOf(it.Host))) {
						t.Fatalf("%s at %v: the previous fetch ended at %v, delay %v", it.URL, now.Sub(t0), end.Sub(t0), f.DelayOf(it.Host))
					}
					busy[it.Host] = true
					inFlight = append(inFlight, fetch{it, now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)})
				default: // time passes; fetches that are over end
					now = now.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
					kept := inFlight[:0]
					for _, fe := range inFlight {
						if fe.end.After(now) {
							kept = append(kept, fe)
							continue
						}
						busy[fe.it.Host] = false
						if rng.IntN(20) == 0 {
							f.Requeue(fe.it, fe.end)
							continue
						}
						handed[fe.it.URL]++
						lastEnd[fe.it.Host] = fe.end
						f.Done(fe.it.Host, fe.end)
					}
					inFlight = kept
				}
			}
			// Drain: finish everything.
			for guard := 0; f.Len() > 0 || len(inFlight) > 0; guard++ {
				if guard > 1_000_000 {
					t.Fatalf("the frontier does not drain: %d held, %d in flight", f.Len(), len(inFlight))
				}
				for _, fe := range inFlight {
					handed[fe.it.URL]++
					lastEnd[fe.it.Host] = now
					f.Done(fe.it.Host, now)
				}
				inFlight = inFlight[:0]
				it, ok, wait := f.Next(now)
				if !ok {
					now = now.Add(max(wait, time.Millisecond))
					continue
				}
				if end, ok := lastEnd[it.Host]; ok && now.Before(end.Add(f.DelayOf(it.Host))) {
					t.Fatalf("drain: %s too early", it.URL)
				}
				inFlight = append(inFlight, fetch{it, now})
			}
			for _, fe := range inFlight {
				handed[fe.it.URL]++
			}
			for u := range added {
				if handed[u] != 1 {
					t.Fatalf("%s handed out %d times", u, handed[u])
				}
			}
			if len(handed) != len(added) {
				t.Fatalf("handed %d distinct URLs, added %d", len(handed), len(added))
			}
			if f.active != 0 || f.ready.Len() != 0 {
				t.Fatalf("after the drain: %d back queues, %d ready", f.active, f.ready.Len())
			}
		})
	}
}

func TestRetryAndCancel(t *testing.T) {
	f := mustNew(t, Config{Levels: 1, BackQueues: 2, Delay: time.Second})
	mustAdd(t, f, t0, item("a", 1, 0), item("a", 2, 0))
	it := next(t, f, t0)
	f.Retry(it, t0.Add(100*time.Millisecond)) // robots.txt was fetched in its slot
	if _, ok, wait := f.Next(t0.Add(500 * time.Millisecond)); ok || wait != 600*time.Millisecond {
		t.Fatalf("after a retry: ok %v, wait %v; want the delay from the retry", ok, wait)
	}
	if again := next(t, f, t0.Add(1100*time.Millisecond)); again.URL != it.URL {
		t.Fatalf("after a retry: %v, want %v", again, it)
	}
	f.Cancel("a", t0.Add(1200*time.Millisecond)) // forbidden: dropped, the host not contacted
	if n := next(t, f, t0.Add(1200*time.Millisecond)); n.URL != "http://a/2" {
		t.Fatalf("after a cancel: %v", n)
	}
	if f.Len() != 0 {
		t.Fatalf("len %d", f.Len())
	}
}

func TestHold(t *testing.T) {
	f := mustNew(t, Config{Levels: 1, BackQueues: 1, Delay: time.Second})
	mustAdd(t, f, t0, item("a", 1, 0), item("b", 1, 0)) // a has the back queue, b waits in front
	f.Hold("a", t0.Add(3*time.Second))
	f.Hold("b", t0.Add(5*time.Second))
	f.Hold("nobody", t0.Add(time.Hour)) // no URLs: nothing to hold
	if _, ok, wait := f.Next(t0); ok || wait != 3*time.Second {
		t.Fatalf("a held: ok %v, wait %v", ok, wait)
	}
	it := next(t, f, t0.Add(3*time.Second))
	f.Done(it.Host, t0.Add(3*time.Second))
	if _, ok, wait := f.Next(t0.Add(3 * time.Second)); ok || wait != 2*time.Second {
		t.Fatalf("b held: ok %v, wait %v", ok, wait)
	}
	if f.hosts["nobody"] != nil {
		t.Fatal("a hold made a host without URLs")
	}
}
