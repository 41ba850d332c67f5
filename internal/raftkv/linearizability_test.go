package raftkv

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
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

type recorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(client int, in CheckInput, out CheckOutput, call, ret int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
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
	var wg sync.WaitGroup
	for client := 1; client <= 4; client++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(client)))
			var seq uint64
			lastRev := int64(0)
			for i := 0; time.Now().Before(stop); i++ {
				in := CheckInput{Kind: OpKind(r.IntN(4)), Value: fmt.Sprintf("c%d-%d", client, i)}
				if in.Kind == OpCAS {
					in.IfRevision = lastRev
				}
				call := rec.now()
				if in.Kind == OpGet {
					n := pick(r)
					actx, acancel := context.WithTimeout(ctx, 150*time.Millisecond)
					v, mod, _, ok, err := n.Read(actx, []byte("x"), true)
					acancel()
					if err == nil {
						rec.add(client, in, CheckOutput{Found: ok, Value: string(v), Revision: mod}, call, rec.now())
						if ok {
							lastRev = mod
						}
					}
					continue
				}
				seq++
				cmd := kv.Command{Op: kv.OpPut, Key: []byte("x"), Value: []byte(in.Value), IfRevision: kv.Unconditional,
					Client: uint64(client), Seq: seq}
				switch in.Kind {
				case OpCAS:
					cmd.IfRevision = in.IfRevision
				case OpDelete:
					cmd.Op, cmd.Value = kv.OpDelete, nil
				}
				out := CheckOutput{Unknown: true}
				ret := int64(math.MaxInt64)
				for attempt := 0; attempt < 8 && ctx.Err() == nil; attempt++ {
					actx, acancel := context.WithTimeout(ctx, 150*time.Millisecond)
					res, err := pick(r).Propose(actx, cmd)
					acancel()
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if res.Status == kv.Stale || res.Status == kv.UnknownSession {
						t.Errorf("client %d request %d: %v", client, seq, res.Status)
					}
					out = CheckOutput{Revision: res.Revision, Applied: res.Status == kv.Applied, Current: res.Current}
					ret = rec.now()
					break
				}
				rec.add(client, in, out, call, ret)
			}
		}(client)
	}
	// The fault schedule, alongside the clients.
	var log []string
	for time.Now().Before(stop) {
		time.Sleep(time.Duration(40+rng.IntN(60)) * time.Millisecond)
		switch rng.IntN(6) {
		case 0:
			if lead := leaderOf(c, &nodesMu); lead != 0 {
				c.net.Isolate(lead, c.ids)
				log = append(log, fmt.Sprint("isolate leader ", lead))
			}
		case 1:
			from, to := c.ids[rng.IntN(3)], c.ids[rng.IntN(3)]
			c.net.Block(from, to)
			log = append(log, fmt.Sprintf("block %d→%d", from, to))
		case 2:
			c.net.SetDelay(time.Duration(rng.IntN(3))*time.Millisecond, 10*time.Millisecond, 0.05)
			log = append(log, "delay+jitter+loss")
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
			c.net.Heal()
			log = append(log, "heal")
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
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, rec.ops, 10*time.Second)
	switch res {
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("raftkv-linearizability-seed%d.html", seed))
		if err := porcupine.VisualizePath(RegisterModel, info, path); err != nil {
			t.Logf("visualisation: %v", err)
		}
		t.Fatalf("seed %d: history of %d operations is NOT linearizable; visualisation: %s\nfaults: %v", seed, len(rec.ops), path, log)
	case porcupine.Unknown:
		t.Logf("seed %d: checker timed out on %d operations", seed, len(rec.ops))
	}
	if len(rec.ops) < 10 {
		t.Fatalf("seed %d: only %d operations completed", seed, len(rec.ops))
	}
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
