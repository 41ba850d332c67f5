package dynamo

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/store"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

var schedules = flag.Int("dynamo.schedules", 50, "randomized fault schedules TestRandomFaultSchedules runs")

// attempt is one client write: what its client had read, and whether the
// cluster acknowledged it.
type attempt struct {
	key, value string
	seen       []string
	acked      bool
	delete     bool
}

// TestRandomFaultSchedules runs seeded schedules of client writes and
// network faults — symmetric and one-way partitions, delay, loss, node
// crashes and restarts — on a 5-node in-process cluster with N=3 and
// --sync always, then heals, lets hinted hand-off and anti-entropy run,
// and checks the properties Dynamo promises:
//
//   - no acknowledged write is lost: its value is still there (possibly as
//     a sibling) unless a later write whose client had read it replaced it;
//   - every replica of every key holds exactly the same versions.
//
// go test ./internal/dynamo -run RandomFault -dynamo.schedules=500 runs more.
func TestRandomFaultSchedules(t *testing.T) {
	for seed := 1; seed <= *schedules; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runSchedule(t, uint64(seed)) })
	}
}

func runSchedule(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	cfg := testConfig()
	cfg.Sync = store.SyncAlways
	cfg.RequestTimeout = 40 * time.Millisecond
	cfg.FailureBackoff = 40 * time.Millisecond
	if os.Getenv("DYNAMO_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	names := []string{"n1", "n2", "n3", "n4", "n5"}
	c := newCluster(t, seed, cfg, names...)
	keys := []string{"a", "b", "c", "d"}
	down := map[string]bool{}
	var log []string
	var attempts []attempt
	alive := func() []string {
		var out []string
		for _, n := range names {
			if !down[n] {
				out = append(out, n)
			}
		}
		return out
	}
	for step := 0; step < 30; step++ {
		switch x := rng.IntN(20); {
		case x == 0: // symmetric partition into two random sides
			perm := rng.Perm(len(names))
			cut := 1 + rng.IntN(len(names)-1)
			var a, b []string
			for i, p := range perm {
				if i < cut {
					a = append(a, names[p])
				} else {
					b = append(b, names[p])
				}
			}
			c.net.Partition(a, b)
			log = append(log, fmt.Sprint("partition ", a, b))
		case x == 1: // one-way
			from, to := names[rng.IntN(5)], names[rng.IntN(5)]
			c.net.Block(from, to)
			log = append(log, fmt.Sprint("block ", from, "→", to))
		case x == 2:
			c.net.SetDelay(time.Duration(rng.IntN(5))*time.Millisecond, 5*time.Millisecond, 0.1)
			log = append(log, "delay+loss")
		case x == 3 && len(alive()) > 2: // crash
			victim := alive()[rng.IntN(len(alive()))]
			c.crash(victim)
			down[victim] = true
			log = append(log, "crash "+victim)
		case x == 4 && len(alive()) < 5: // restart
			for _, n := range names {
				if down[n] {
					c.start(n)
					delete(down, n)
					log = append(log, "restart "+n)
					break
				}
			}
		case x == 5:
			c.net.Heal()
			log = append(log, "heal")
		default: // a client reads, then writes with what it read
			key := keys[rng.IntN(len(keys))]
			via := c.node(alive()[rng.IntN(len(alive()))])
			a := attempt{key: key, value: fmt.Sprintf("%d.%d", seed, step), delete: rng.IntN(8) == 0}
			var ctx vclock.Clock
			if vs, err := via.Get(context.Background(), []byte(key), 1); err == nil {
				ctx = vclock.Context(vs)
				for _, v := range vs {
					if !v.Tombstone {
						a.seen = append(a.seen, string(v.Value))
					}
				}
			}
			_, err := via.Put(context.Background(), []byte(key), WriteRequest{Context: ctx, Value: []byte(a.value), Tombstone: a.delete, W: 1 + rng.IntN(2)})
			a.acked = err == nil
			attempts = append(attempts, a)
			log = append(log, fmt.Sprintf("write %s=%s via %s acked=%v", key, a.value, via.ID(), a.acked))
		}
	}
	for n := range down {
		c.start(n)
	}
	c.converge()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: %s\nschedule:\n  %s", seed, fmt.Sprintf(format, args...), joinLines(log))
	}
	final := map[string][]string{}
	for _, key := range keys {
		reps := c.replicas(key)
		if len(reps) != cfg.N {
			fail("%s has %d replicas", key, len(reps))
		}
		var first []string
		for node, vs := range reps {
			got := valuesOf(vs)
			if first == nil {
				first = got
			} else if !slices.Equal(got, first) {
				fail("replicas of %s diverge: %s holds %v, another %v", key, node, got, first)
			}
		}
		final[key] = first
	}
	acked := 0
	for _, a := range attempts {
		if !a.acked || a.delete {
			continue
		}
		acked++
		if slices.Contains(final[a.key], a.value) {
			continue
		}
		replaced := false
		for _, b := range attempts {
			if b.key == a.key && slices.Contains(b.seen, a.value) {
				replaced = true
			}
		}
		if !replaced {
			for _, n := range c.all() {
				targets, _ := n.store.HintTargets()
				t.Logf("%s: ring %v hints for %v stats %+v", n.ID(), n.Ring().PreferenceList([]byte(a.key), 3), targets, n.metrics.snapshot())
				main, _ := n.store.Get([]byte(a.key))
				_ = main
				vs, _ := n.store.Get([]byte(a.key))
				for _, v := range vs {
					t.Logf("%s holds %s dot=%s:%d ctx=%v", n.ID(), v.Value, v.Dot.Node, v.Dot.Counter, v.Context)
				}
			}
			fail("acknowledged write %s=%s is lost: final %v", a.key, a.value, final[a.key])
		}
	}
	if acked == 0 {
		t.Logf("seed %d: no write was acknowledged", seed)
	}
}

func joinLines(l []string) string {
	out := ""
	for i, s := range l {
		if i > 0 {
			out += "\n  "
		}
		out += s
	}
	return out
}

// With no failures, a read with R + W > N sees the latest acknowledged
// write, whichever nodes coordinate the two.
func TestQuorumReadSeesLatestWrite(t *testing.T) {
	c := newCluster(t, 11, testConfig(), "n1", "n2", "n3", "n4", "n5")
	rng := rand.New(rand.NewPCG(11, 11))
	var ctx vclock.Clock
	for i := 0; i < 200; i++ {
		value := fmt.Sprint("v", i)
		ctx = put(t, c.all()[rng.IntN(5)], "hot", value, ctx, 2)
		if got := valuesOf(get(t, c.all()[rng.IntN(5)], "hot", 2)); !slices.Contains(got, value) {
			t.Fatalf("write %d: R=2 read returned %v", i, got)
		}
	}
}
