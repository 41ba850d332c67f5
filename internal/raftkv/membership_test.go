package raftkv

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
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
	var wg sync.WaitGroup
	for client := 1; client <= 3; client++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(21, uint64(client)))
			var seq uint64
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				call := rec.now()
				if r.IntN(2) == 0 {
					actx, acancel := context.WithTimeout(ctx, 200*time.Millisecond)
					v, mod, _, ok, err := live(r).Read(actx, []byte("x"), true)
					acancel()
					if err == nil {
						rec.add(client, CheckInput{Kind: OpGet}, CheckOutput{Found: ok, Value: string(v), Revision: mod}, call, rec.now())
					}
					continue
				}
				seq++
				in := CheckInput{Kind: OpPut, Value: fmt.Sprintf("c%d-%d", client, i)}
				cmd := kv.Command{Op: kv.OpPut, Key: []byte("x"), Value: []byte(in.Value), IfRevision: kv.Unconditional, Client: uint64(client), Seq: seq}
				out, ret := CheckOutput{Unknown: true}, int64(math.MaxInt64)
				for attempt := 0; attempt < 10; attempt++ {
					actx, acancel := context.WithTimeout(ctx, 200*time.Millisecond)
					res, err := live(r).Propose(actx, cmd)
					acancel()
					if err == nil {
						out, ret = CheckOutput{Revision: res.Revision, Applied: true}, rec.now()
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				rec.add(client, in, out, call, ret)
			}
		}(client)
	}
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
	time.Sleep(200 * time.Millisecond)
	// Node 4 starts empty, joining: it learns the cluster from the leader.
	cfg := c.cfg
	cfg.ID, cfg.Join, cfg.DataDir = 4, true, filepath.Join(c.dir, "4")
	n4, err := Start(cfg, c.net.Transport(4))
	if err != nil {
		t.Fatal(err)
	}
	c.net.Attach(n4)
	mu.Lock()
	c.nodes[4] = n4
	mu.Unlock()
	change(true, 4)
	time.Sleep(200 * time.Millisecond)
	change(false, 1)
	mu.Lock()
	c.net.Detach(1)
	_ = c.nodes[1].Stop()
	delete(c.nodes, 1)
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if res, info := porcupine.CheckOperationsVerbose(RegisterModel, rec.ops, 10*time.Second); res == porcupine.Illegal {
		path := filepath.Join(t.TempDir(), "membership.html")
		_ = porcupine.VisualizePath(RegisterModel, info, path)
		t.Fatalf("history of %d operations is NOT linearizable (%s)", len(rec.ops), path)
	}
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
