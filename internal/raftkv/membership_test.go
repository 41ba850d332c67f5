package raftkv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Membership changes under load: while clients read and write, node 4
// joins (an empty node that learns everything from the leader) and node 1
// — whichever role it has — is removed. The history must stay
// linearizable and node 4 must end up with the data.
func TestMembershipChangeUnderLoad(t *testing.T) {
	c := newCluster(t, 21, 3)
	c.leader()
	rec := &recorder{start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var mu sync.Mutex
	live := func(r *rand.Rand) *Node {
		mu.Lock()
		defer mu.Unlock()
		var ns []*Node
		for _, n := range c.nodes {
			ns = append(ns, n)
		}
		return ns[r.IntN(len(ns))]
	}
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	wg := workload(ctx, t, rec, 21, 3, []OpKind{OpGet, OpPut}, live, stopped)
	change := func(add bool, id uint64) {
		t.Helper()
		for attempt := 0; ; attempt++ {
			actx, acancel := context.WithTimeout(ctx, time.Second)
			err := live(rand.New(rand.NewPCG(uint64(attempt), 1))).ChangeMembership(actx, add, id, "")
			acancel()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("membership change (add=%v, %d): %v", add, id, err)
			}
		}
	}
	// Events, not sleeps: each phase waits for operations to complete.
	opsDone := func() int {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.ops)
	}
	waitOps := func(n int) {
		t.Helper()
		target := opsDone() + n
		for opsDone() < target {
			if ctx.Err() != nil {
				t.Fatalf("the workload stalled at %d operations", opsDone())
			}
			time.Sleep(5 * time.Millisecond) // polling the event; the test's outcome does not depend on it
		}
	}
	waitOps(50)
	// Node 4 starts empty, joining: it learns the cluster from the leader.
	cfg := c.cfg
	cfg.ID, cfg.Join, cfg.DataDir = 4, true, filepath.Join(c.dir, "4")
	// What a join answers: the members, whose messages it then admits.
	cfg.KnownPeer = func(id uint64) bool { return id >= 1 && id <= 3 }
	n4, err := Start(cfg, c.net.Transport(4))
	if err != nil {
		t.Fatal(err)
	}
	c.net.Attach(n4)
	c.all = append(c.all, n4)
	mu.Lock()
	c.nodes[4] = n4
	mu.Unlock()
	change(true, 4)
	// Node 4 has caught up once it has applied what the cluster committed.
	for committed := c.nodes[c.leader()].Status().Commit; n4.Status().Applied < committed; {
		if ctx.Err() != nil {
			t.Fatal("node 4 did not catch up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitOps(50)
	change(false, 1)
	mu.Lock()
	c.net.Detach(1)
	_ = c.nodes[1].Stop()
	delete(c.nodes, 1)
	mu.Unlock()
	waitOps(50) // the cluster of 2, 3, 4 serves
	close(stop)
	wg.Wait()
	checkHistory(t, rec, filepath.Join(t.TempDir(), "membership.html"))
	if got := fmt.Sprint(n4.Members()); got != "[2 3 4]" {
		t.Fatalf("members seen by node 4: %s", got)
	}
	// Node 4 serves linearizable reads with the latest value.
	want, _, _, _, err := c.nodes[2].Read(ctx, []byte("x"), true)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, _, err := n4.Read(ctx, []byte("x"), true)
	if err != nil || string(got) != string(want) {
		t.Fatalf("node 4 reads %q (%v), node 2 %q", got, err, want)
	}
	t.Logf("%d operations checked", len(rec.ops))
}
