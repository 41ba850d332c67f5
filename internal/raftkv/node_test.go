package raftkv

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

type cluster struct {
	t     *testing.T
	dir   string
	ids   []uint64
	net   *Network
	nodes map[uint64]*Node
	cfg   Config
	all   []*Node // every node started, for the guard's check at the end
}

func newCluster(t *testing.T, seed uint64, size int) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), net: NewNetwork(seed), nodes: map[uint64]*Node{}}
	c.cfg = DefaultConfig()
	c.cfg.TickInterval, c.cfg.Sync, c.cfg.SnapshotEvery = 10*time.Millisecond, false, 50
	for i := 1; i <= size; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	for _, id := range c.ids {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			_ = n.Stop()
		}
		// Correct peers never send what the guard refuses, whatever the
		// faults: a drop here is a guard rule that is too strict.
		for _, n := range c.all {
			if d, why := n.Dropped(); d != 0 {
				t.Errorf("node %d's guard dropped %d messages from correct peers; the last: %s", n.ID(), d, why)
			}
		}
	})
	return c
}

func (c *cluster) start(id uint64) {
	c.t.Helper()
	cfg := c.cfg
	cfg.ID, cfg.Peers, cfg.DataDir = id, c.ids, filepath.Join(c.dir, fmt.Sprint(id))
	n, err := Start(cfg, c.net.Transport(id))
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id] = n
	c.all = append(c.all, n)
	c.net.Attach(n)
}

func (c *cluster) crash(id uint64) {
	c.net.Detach(id)
	_ = c.nodes[id].Stop()
	delete(c.nodes, id)
}

func (c *cluster) leader() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for id, n := range c.nodes {
			if n.Leader() == id {
				return id
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no leader elected")
	return 0
}

// write proposes through any live node, retrying with the same client
// request number (so a retry is never applied twice) until it succeeds.
func (c *cluster) write(ctx context.Context, seq uint64, key, value string) kv.Result {
	c.t.Helper()
	cmd := kv.Command{Op: kv.OpPut, Key: []byte(key), Value: []byte(value), IfRevision: kv.Unconditional, Client: 42, Seq: seq}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		for _, n := range c.nodes {
			actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			r, err := n.Propose(actx, cmd)
			cancel()
			if err == nil {
				return r
			}
		}
	}
	c.t.Fatalf("write %d: %v", seq, ctx.Err())
	return kv.Result{}
}

func TestReplicateCrashRestartCatchUp(t *testing.T) {
	c := newCluster(t, 1, 3)
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 120; i++ { // past two snapshots (every 50 entries)
		via := c.nodes[c.ids[i%3]]
		r, err := via.Propose(ctx, kv.Command{Op: kv.OpPut, Key: []byte(fmt.Sprint("k", i%10)), Value: []byte(fmt.Sprint(i)), IfRevision: kv.Unconditional})
		if err != nil || r.Status != kv.Applied || r.Revision != int64(i+1) {
			t.Fatalf("write %d via %d: %+v %v", i, via.ID(), r, err)
		}
	}
	// Every node serves a linearizable read of the last write.
	for _, n := range c.nodes {
		v, mod, _, ok, err := n.Read(ctx, []byte("k9"), true)
		if err != nil || !ok || string(v) != "119" || mod != 120 {
			t.Fatalf("read on %d: %q %d %v %v", n.ID(), v, mod, ok, err)
		}
	}
	// The leader crashes; the others elect a new one and keep going.
	c.crash(lead)
	for i := 120; i < 200; i++ {
		if r := c.write(ctx, uint64(i), fmt.Sprint("k", i%10), fmt.Sprint(i)); r.Status != kv.Applied || r.Revision != int64(i+1) {
			t.Fatalf("write %d after the crash: %+v (applied twice?)", i, r)
		}
	}
	// It restarts from its disk (log and snapshot) and catches up.
	c.start(lead)
	n := c.nodes[lead]
	deadline := time.Now().Add(10 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		v, _, _, ok, err := n.Read(actx, []byte("k9"), true)
		cancel()
		if err == nil && ok && string(v) == "199" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node did not catch up: %q %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A leader that shuts down gracefully hands leadership over first, so the
// cluster does not sit through an election timeout.
func TestLeadershipTransferOnShutdown(t *testing.T) {
	c := newCluster(t, 3, 3)
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.write(ctx, 1, "k", "v")
	transferLeadership(c.nodes[lead], c.nodes[lead].log)
	next := c.nodes[lead].Leader()
	if next == lead || next == 0 {
		t.Fatalf("leader still %d (sees %d) after the transfer", lead, next)
	}
	c.crash(lead)
	if r := c.write(ctx, 2, "k", "w"); r.Status != kv.Applied {
		t.Fatalf("write after the transfer: %+v", r)
	}
}

// Concurrent linearizable reads share ReadIndex rounds: 200 reads from 20
// goroutines take far fewer rounds than reads, and every read still sees
// the write acknowledged before it began.
func TestReadsShareReadIndexRounds(t *testing.T) {
	c := newCluster(t, 31, 3)
	lead := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r := c.write(ctx, 1, "k", "v1"); r.Status != kv.Applied {
		t.Fatalf("write: %+v", r)
	}
	follower := c.nodes[lead%3+1]
	before := follower.readRounds.Load()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				v, _, _, ok, err := follower.Read(ctx, []byte("k"), true)
				if err != nil || !ok || string(v) != "v1" {
					errs <- fmt.Errorf("read: %q %v %v", v, ok, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rounds := follower.readRounds.Load() - before
	t.Logf("200 linearizable reads took %d ReadIndex rounds", rounds)
	if rounds > 100 || rounds == 0 {
		t.Fatalf("200 concurrent reads took %d ReadIndex rounds; they should share them", rounds)
	}
}
