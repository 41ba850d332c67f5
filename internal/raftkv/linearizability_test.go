package raftkv

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var schedules = flag.Int("raftkv.schedules", 50, "randomized fault schedules TestLinearizableUnderFaults runs")

// TestLinearizableUnderFaults runs seeded schedules on a 3-node in-process
// cluster: concurrent clients do gets, puts, compare-and-sets and deletes
// on one key through random nodes (retrying writes with the same request
// number, so a retry is never applied twice), while the schedule isolates
// the leader, blocks links one way, delays, reorders and loses messages,
// and crashes and restarts nodes from their disk state. The recorded
// history must be linearizable (Porcupine). On a violation the
// visualisation is written next to the failure and its path logged.
//
// go test ./internal/raftkv -run Linearizable -raftkv.schedules=1000 runs more.
func TestLinearizableUnderFaults(t *testing.T) {
	for seed := 1; seed <= *schedules; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runLinearizability(t, uint64(seed)) })
	}
}

func runLinearizability(t *testing.T, seed uint64) {
	c := newCluster(t, seed, 3)
	c.leader()
	rng := rand.New(rand.NewPCG(seed, 7))
	rec := &recorder{start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var nodesMu sync.Mutex
	pick := func(r *rand.Rand) *Node {
		nodesMu.Lock()
		defer nodesMu.Unlock()
		var live []*Node
		for _, id := range c.ids {
			if n := c.nodes[id]; n != nil {
				live = append(live, n)
			}
		}
		return live[r.IntN(len(live))]
	}
	stop := time.Now().Add(600 * time.Millisecond)
	wg := workload(ctx, t, rec, seed, 4, []OpKind{OpGet, OpPut, OpCAS, OpDelete}, pick, func() bool { return time.Now().After(stop) })
	// The fault schedule, alongside the clients.
	var log []string
	for time.Now().Before(stop) {
		time.Sleep(time.Duration(40+rng.IntN(60)) * time.Millisecond)
		switch kind := rng.IntN(6); kind {
		case 0, 1, 2:
			log = append(log, networkFault(c, rng, kind, leaderOf(c, &nodesMu)))
		case 3:
			nodesMu.Lock()
			victim := c.ids[rng.IntN(3)]
			if c.nodes[victim] != nil && len(c.nodes) == 3 {
				c.crash(victim)
				log = append(log, fmt.Sprint("crash ", victim))
			}
			nodesMu.Unlock()
		case 4:
			nodesMu.Lock()
			for _, id := range c.ids {
				if c.nodes[id] == nil {
					c.start(id)
					log = append(log, fmt.Sprint("restart ", id))
				}
			}
			nodesMu.Unlock()
		default:
			log = append(log, networkFault(c, rng, -1, 0))
		}
	}
	wg.Wait()
	c.net.Heal()
	nodesMu.Lock()
	for _, id := range c.ids {
		if c.nodes[id] == nil {
			c.start(id)
		}
	}
	nodesMu.Unlock()
	checkHistory(t, rec, filepath.Join(os.TempDir(), fmt.Sprintf("raftkv-linearizability-seed%d.html", seed)), "seed", seed, "faults", log)
	if len(rec.ops) < 10 {
		t.Fatalf("seed %d: only %d operations completed", seed, len(rec.ops))
	}
}

// networkFault applies one network fault of the schedules and names it:
// kind 0 isolates the leader (if there is one), 1 blocks a random link one
// way, 2 delays with jitter and loss, anything else heals the network.
func networkFault(c *cluster, rng *rand.Rand, kind int, leader uint64) string {
	switch kind {
	case 0:
		if leader == 0 {
			return "no leader to isolate"
		}
		c.net.Isolate(leader, c.ids)
		return fmt.Sprint("isolate leader ", leader)
	case 1:
		from, to := c.ids[rng.IntN(3)], c.ids[rng.IntN(3)]
		c.net.Block(from, to)
		return fmt.Sprintf("block %d→%d", from, to)
	case 2:
		c.net.SetDelay(time.Duration(rng.IntN(3))*time.Millisecond, 10*time.Millisecond, 0.05)
		return "delay+jitter+loss"
	}
	c.net.Heal()
	return "heal"
}

func leaderOf(c *cluster, mu *sync.Mutex) uint64 {
	mu.Lock()
	defer mu.Unlock()
	for id, n := range c.nodes {
		if n.Leader() == id {
			return id
		}
	}
	return 0
}
