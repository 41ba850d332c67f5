package balance

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"
)

func backends(weights ...float64) []Backend {
	bs := make([]Backend, len(weights))
	for i, w := range weights {
		bs[i] = Backend{ID: string(rune('a' + i)), Weight: w, Cost: 0.001}
	}
	return bs
}

func TestEveryPolicyHandlesNoneAndOne(t *testing.T) {
	for _, name := range Names {
		p, err := New(name, 1)
		if err != nil {
			t.Fatal(err)
		}
		if b := p.Pick(nil, Request{Key: "k"}); b != nil {
			t.Errorf("%s: picked %v from none", name, b)
		}
		one := backends(1)
		for i := 0; i < 10; i++ {
			if b := p.Pick(one, Request{Key: fmt.Sprint(i)}); b == nil || b.ID != "a" {
				t.Fatalf("%s: picked %v from one", name, b)
			}
		}
	}
	if _, err := New("fastest", 1); err == nil {
		t.Fatal("an unknown policy was made")
	}
}

// Every policy, fed equal idle backends, gives each its share over many
// requests: no policy starves a healthy backend.
func TestEveryPolicySharesEqualBackends(t *testing.T) {
	for _, name := range Names {
		p, _ := New(name, 7)
		bs := backends(1, 1, 1, 1)
		counts := map[string]int{}
		for i := 0; i < 8000; i++ {
			counts[p.Pick(bs, Request{Key: fmt.Sprint("client-", i)}).ID]++
		}
		for _, b := range bs {
			if c := counts[b.ID]; c < 2000*8/10 || c > 2000*12/10 {
				t.Errorf("%s: %s got %d of 8000, want 2000 ± 20 %% (%v)", name, b.ID, c, counts)
			}
		}
	}
}

func picks(p Policy, bs []Backend, n int) string {
	var out strings.Builder
	for i := 0; i < n; i++ {
		out.WriteString(p.Pick(bs, Request{}).ID)
	}
	return out.String()
}

func TestRoundRobinCycles(t *testing.T) {
	if got := picks(&RoundRobin{}, backends(5, 1, 1), 7); got != "abcabca" {
		t.Fatalf("%s: round robin ignores weights and cycles", got)
	}
}

// nginx's smooth weighted round robin: weights 5, 1, 1 give the sequence
// its source comments give, a a b a c a a, and exact shares per cycle.
func TestSmoothWeightedIsNginxs(t *testing.T) {
	p := &SmoothWeighted{}
	bs := backends(5, 1, 1)
	if got := picks(p, bs, 7); got != "aabacaa" {
		t.Fatalf("sequence %s, want aabacaa", got)
	}
	got := picks(p, bs, 700)
	if strings.Count(got, "a") != 500 || strings.Count(got, "b") != 100 || strings.Count(got, "c") != 100 {
		t.Fatalf("shares over 100 cycles: a %d b %d c %d", strings.Count(got, "a"), strings.Count(got, "b"), strings.Count(got, "c"))
	}
	if strings.Contains(got, "aaaaa") {
		t.Fatal("a run of five: smooth weighting interleaves")
	}
	// When a leaves mid-cycle, b and c keep their credit from the cycle
	// (at most one cycle's skew, as nginx) and then share evenly.
	p2 := &SmoothWeighted{}
	picks(p2, bs, 3)
	if got := picks(p2, bs[1:], 100); strings.Count(got, "b") < 48 || strings.Count(got, "b") > 52 {
		t.Fatalf("after a left: %s", got)
	}
}

// haproxy #1099: requests that arrive together, before any completes,
// all saw the same counts and went to the first backend. A burst here
// spreads evenly, and weights count.
func TestLeastConnSpreadsABurst(t *testing.T) {
	p := &LeastConn{}
	bs := backends(1, 1, 1, 1)
	for i := 0; i < 100; i++ {
		p.Pick(bs, Request{}).InFlight++ // the pool counts the request in flight at once
	}
	for _, b := range bs {
		if b.InFlight != 25 {
			t.Fatalf("burst of 100 over 4: %v", bs)
		}
	}
	// Counts the pool read before the burst (stale for all of it): ties rotate.
	stale := backends(1, 1, 1, 1)
	counts := map[string]int{}
	for i := 0; i < 100; i++ {
		counts[p.Pick(stale, Request{}).ID]++
	}
	for _, b := range stale {
		if counts[b.ID] != 25 {
			t.Fatalf("a burst on stale equal counts: %v", counts)
		}
	}
	weighted := backends(2, 1)
	for i := 0; i < 300; i++ {
		p.Pick(weighted, Request{}).InFlight++
	}
	if weighted[0].InFlight != 200 || weighted[1].InFlight != 100 {
		t.Fatalf("weights 2:1 hold %d and %d in flight", weighted[0].InFlight, weighted[1].InFlight)
	}
	busy := backends(1, 1, 1)
	busy[0].InFlight, busy[1].InFlight = 5, 1
	if b := p.Pick(busy, Request{}); b.ID != "c" {
		t.Fatalf("picked %s, want the idle c", b.ID)
	}
}

func TestIPHashSticksAndMovesOnlyWhatItMust(t *testing.T) {
	bs := backends(1, 1, 1, 1, 1)
	where := map[string]string{}
	counts := map[string]int{}
	for i := 0; i < 10000; i++ {
		key := fmt.Sprintf("10.0.%d.%d", i/250, i%250)
		id := (IPHash{}).Pick(bs, Request{Key: key}).ID
		where[key] = id
		counts[id]++
		if again := (IPHash{}).Pick(bs, Request{Key: key}).ID; again != id {
			t.Fatalf("%s went to %s, then %s", key, id, again)
		}
	}
	for _, b := range bs {
		if c := counts[b.ID]; c < 1700 || c > 2300 {
			t.Fatalf("shares %v: want 2000 ± 15 %% each", counts)
		}
	}
	without := append(append([]Backend(nil), bs[:2]...), bs[3:]...) // c removed
	moved := 0
	for key, id := range where {
		now := (IPHash{}).Pick(without, Request{Key: key}).ID
		if id != "c" && now != id {
			t.Fatalf("%s moved from %s to %s though %s stayed", key, id, now, id)
		}
		if id == "c" {
			moved++
		}
	}
	if moved != counts["c"] {
		t.Fatalf("moved %d, want exactly c's %d", moved, counts["c"])
	}
	weighted := backends(2, 1, 1)
	wc := map[string]int{}
	for i := 0; i < 12000; i++ {
		wc[(IPHash{}).Pick(weighted, Request{Key: fmt.Sprint("k", i)}).ID]++
	}
	if wc["a"] < 5400 || wc["a"] > 6600 || wc["b"] < 2600 || wc["b"] > 3400 {
		t.Fatalf("weights 2:1:1 gave %v", wc)
	}
}

func TestBoundedConsistentSticksUntilTheBound(t *testing.T) {
	p := NewBoundedConsistent(DefaultVNodes, 1.25)
	bs := backends(1, 1, 1, 1)
	home := map[string]string{}
	for i := 0; i < 2000; i++ {
		key := fmt.Sprint("session-", i)
		home[key] = p.Pick(bs, Request{Key: key}).ID
		if again := p.Pick(bs, Request{Key: key}).ID; again != home[key] {
			t.Fatalf("%s went to %s, then %s", key, home[key], again)
		}
	}
	// Removing a backend moves only its own keys.
	for key, id := range home {
		if now := p.Pick(bs[1:], Request{Key: key}).ID; id != "a" && now != id {
			t.Fatalf("%s moved from %s to %s", key, id, now)
		}
	}
	// One hot session, requests piling up: no backend passes
	// ceil(1.25 × (total + 1) / 4) in flight.
	hot := backends(1, 1, 1, 1)
	for i := 1; i <= 400; i++ {
		b := p.Pick(hot, Request{Key: "hot"})
		b.InFlight++
		for _, x := range hot {
			if bound := math.Ceil(1.25 * float64(i) / 4); float64(x.InFlight) > bound {
				t.Fatalf("after %d requests %s holds %d, over the bound %v", i, x.ID, x.InFlight, bound)
			}
		}
	}
	if hot[0].InFlight+hot[1].InFlight+hot[2].InFlight+hot[3].InFlight != 400 {
		t.Fatal("requests lost")
	}
}

func TestRandomAndP2CShares(t *testing.T) {
	r := NewRandom(3)
	bs := backends(3, 1)
	c := map[string]int{}
	for i := 0; i < 40000; i++ {
		c[r.Pick(bs, Request{}).ID]++
	}
	if c["a"] < 29000 || c["a"] > 31000 {
		t.Fatalf("weights 3:1 gave %v", c)
	}
	// p2c never picks the one loaded backend: it always has a lighter rival.
	p := NewP2C(3, false)
	loaded := backends(1, 1, 1, 1)
	loaded[2].InFlight = 50
	for i := 0; i < 1000; i++ {
		if p.Pick(loaded, Request{}).ID == "c" {
			t.Fatal("p2c picked the loaded backend")
		}
	}
}

func TestPeakEWMA(t *testing.T) {
	t0 := time.Unix(0, 0)
	e := &PeakEWMA{Tau: 10 * time.Second}
	if _, known := e.Cost(t0); known {
		t.Fatal("cost known before any response")
	}
	e.Observe(10*time.Millisecond, t0)
	e.Observe(100*time.Millisecond, t0.Add(time.Second)) // a peak replaces at once
	if c, _ := e.Cost(t0.Add(time.Second)); math.Abs(c-0.1) > 1e-9 {
		t.Fatalf("after a peak: %v, want 0.1", c)
	}
	// A faster response 10 s (one tau) later pulls it 63 % of the way.
	e.Observe(10*time.Millisecond, t0.Add(11*time.Second))
	want := 0.1*math.Exp(-1) + 0.01*(1-math.Exp(-1))
	if c, _ := e.Cost(t0.Add(11 * time.Second)); math.Abs(c-want) > 1e-9 {
		t.Fatalf("after one tau: %v, want %v", c, want)
	}
	// Without responses the cost decays towards zero.
	c1, _ := e.Cost(t0.Add(20 * time.Second))
	c2, _ := e.Cost(t0.Add(60 * time.Second))
	if !(c2 < c1 && c1 < want && c2 < 0.002) {
		t.Fatalf("decay without responses: %v then %v", c1, c2)
	}
}

func TestSlowStartRampsFromAFloorAboveZero(t *testing.T) {
	s := SlowStart{Window: 10 * time.Second, Aggression: 1, Floor: 0}
	if f := s.Factor(0); f != 0.01 {
		t.Fatalf("at 0: %v, want the 0.01 floor", f)
	}
	if f := s.Factor(5 * time.Second); math.Abs(f-0.5) > 1e-9 {
		t.Fatalf("half way, linear: %v", f)
	}
	if f := s.Factor(10 * time.Second); f != 1 {
		t.Fatalf("at the window: %v", f)
	}
	fast := SlowStart{Window: 10 * time.Second, Aggression: 2, Floor: 0.1}
	if f := fast.Factor(2500 * time.Millisecond); math.Abs(f-0.5) > 1e-9 {
		t.Fatalf("aggression 2 at a quarter: %v, want 0.5", f)
	}
	if (SlowStart{}).Factor(0) != 1 {
		t.Fatal("no window is no slow start")
	}
}

// sim runs a policy against backends whose service time is latency(i, t),
// arrivals every gap; the pool counts in flight and feeds peak-EWMA, as
// the proxy does. It returns the requests each backend got and each
// request's latency.
type simResult struct {
	counts    []int
	latencies []time.Duration
}

func sim(p Policy, n, arrivals int, gap time.Duration, latency func(i int, at time.Time) time.Duration, weight func(i int, at time.Time) float64) simResult {
	type done struct {
		at time.Time
		i  int
		d  time.Duration
	}
	t0 := time.Unix(1000, 0)
	bs := make([]Backend, n)
	ewma := make([]*PeakEWMA, n)
	for i := range bs {
		bs[i] = Backend{ID: fmt.Sprint("b", i), Weight: 1}
		ewma[i] = &PeakEWMA{Tau: DefaultTau}
	}
	var pending []done
	res := simResult{counts: make([]int, n)}
	for k := 0; k < arrivals; k++ {
		now := t0.Add(time.Duration(k) * gap)
		sort.Slice(pending, func(a, b int) bool { return pending[a].at.Before(pending[b].at) })
		for len(pending) > 0 && !pending[0].at.After(now) {
			d := pending[0]
			pending = pending[1:]
			bs[d.i].InFlight--
			ewma[d.i].Observe(d.d, d.at)
		}
		known, sum := 0, 0.0
		for i := range bs {
			if c, ok := ewma[i].Cost(now); ok {
				bs[i].Cost, known, sum = c, known+1, sum+c
			}
		}
		for i := range bs {
			if _, ok := ewma[i].Cost(now); !ok {
				bs[i].Cost = 0.001
				if known > 0 {
					bs[i].Cost = sum / float64(known)
				}
			}
			if weight != nil {
				bs[i].Weight = weight(i, now)
			}
		}
		b := p.Pick(bs, Request{Key: fmt.Sprint(k)})
		var i int
		fmt.Sscanf(b.ID, "b%d", &i)
		bs[i].InFlight++
		res.counts[i]++
		d := latency(i, now)
		res.latencies = append(res.latencies, d)
		pending = append(pending, done{now.Add(d), i, d})
	}
	return res
}

func p99(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	return s[len(s)*99/100]
}

// One backend of four degraded by +50 ms: round robin keeps sending it a
// quarter; least-conn and peak-EWMA steer away, peak-EWMA the most.
func TestPoliciesAgainstADegradedBackend(t *testing.T) {
	latency := func(i int, _ time.Time) time.Duration {
		if i == 3 {
			return 55 * time.Millisecond
		}
		return 5 * time.Millisecond
	}
	share := map[string]float64{}
	tail := map[string]time.Duration{}
	for _, name := range []string{"round-robin", "least-conn", "p2c", "peak-ewma"} {
		p, _ := New(name, 11)
		r := sim(p, 4, 20000, time.Millisecond, latency, nil)
		share[name] = float64(r.counts[3]) / 20000
		tail[name] = p99(r.latencies)
	}
	if share["round-robin"] != 0.25 {
		t.Fatalf("round robin gave the slow backend %.3f", share["round-robin"])
	}
	if !(share["peak-ewma"] < 0.05 && share["peak-ewma"] < share["least-conn"] && share["least-conn"] < 0.25) {
		t.Fatalf("slow backend's share: %v", share)
	}
	if !(tail["peak-ewma"] < tail["round-robin"]) {
		t.Fatalf("p99: %v", tail)
	}
}

// traefik #12306: a least-time policy that learns only from responses
// starved one of five identical upstreams after one slow response. Here
// the estimate decays and p2c keeps drawing it: every backend gets at
// least half its fair share.
func TestPeakEWMADoesNotStarveABackendThatWasSlowOnce(t *testing.T) {
	p, _ := New("peak-ewma", 5)
	first := true
	latency := func(i int, _ time.Time) time.Duration {
		if i == 2 && first {
			first = false
			return 2 * time.Second
		}
		return 5 * time.Millisecond
	}
	// Arrivals 20 ms apart: 200 s of traffic, many decay times.
	r := sim(p, 5, 10000, 20*time.Millisecond, latency, nil)
	for i, c := range r.counts {
		if c < 10000/5/2 {
			t.Fatalf("backend %d got %d of 10000, under half its fair share (%v)", i, c, r.counts)
		}
	}
}

// envoy #19437: least-request with slow start sent a new endpoint
// nothing. A backend joining busy ones, in slow start, gets traffic at
// once and its full share by the window's end.
func TestSlowStartBackendGetsTrafficAtOnce(t *testing.T) {
	ss := SlowStart{Window: 10 * time.Second, Aggression: 1, Floor: 0.1}
	t0 := time.Unix(1000, 0)
	for _, name := range []string{"least-conn", "p2c", "peak-ewma", "weighted", "random"} {
		p, _ := New(name, 9)
		weight := func(i int, at time.Time) float64 {
			if i == 3 {
				return ss.Factor(at.Sub(t0))
			}
			return 1
		}
		latency := func(int, time.Time) time.Duration { return 20 * time.Millisecond }
		first := sim(p, 4, 1000, time.Millisecond, latency, weight) // the first second
		if first.counts[3] == 0 {
			t.Fatalf("%s: the new backend got nothing in its first second (%v)", name, first.counts)
		}
		p, _ = New(name, 9)
		all := sim(p, 4, 20000, time.Millisecond, latency, weight) // 20 s: past the window
		if all.counts[3] < 20000/4/2 {
			t.Fatalf("%s: the new backend got %d of 20000 over 20 s (%v)", name, all.counts[3], all.counts)
		}
	}
}
