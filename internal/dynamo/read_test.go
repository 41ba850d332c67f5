package dynamo

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// countingTransport counts the replica requests a node sends.
type countingTransport struct {
	inner Transport
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingTransport) Call(ctx context.Context, to string, req []byte) ([]byte, error) {
	c.mu.Lock()
	c.calls[to]++
	c.mu.Unlock()
	return c.inner.Call(ctx, to, req)
}

func (c *countingTransport) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

// A read asks R replicas, this node first: R=1 is a local read, R=2 one
// request over the network; a failed or slow replica makes it ask the
// others, so a read never waits for a request timeout while a quorum
// could answer.
func TestReadsAskRReplicasFirst(t *testing.T) {
	cfg := testConfig()
	cfg.SpeculativeRead = 20 * time.Millisecond
	net := NewNetwork(5)
	members := NewStatic("a", "b", "c")
	dir := t.TempDir()
	nodes, counters := map[string]*Node{}, map[string]*countingTransport{}
	for _, name := range []string{"a", "b", "c"} {
		c := cfg
		c.ID, c.DataDir = name, filepath.Join(dir, name)
		counters[name] = &countingTransport{inner: net.Transport(name), calls: map[string]int{}}
		n, err := Open(c, members, counters[name])
		if err != nil {
			t.Fatal(err)
		}
		net.Attach(name, n.Handle)
		nodes[name] = n
		t.Cleanup(func() { _ = n.Close() })
	}
	ctx := context.Background()
	a := nodes["a"]
	if _, err := a.Put(ctx, []byte("k"), WriteRequest{Value: []byte("v"), W: 3}); err != nil {
		t.Fatal(err)
	}
	a.bg.Wait()
	read := func(r int) time.Duration {
		t.Helper()
		before := counters["a"].total()
		start := time.Now()
		vs, err := a.Get(ctx, []byte("k"), r)
		took := time.Since(start)
		if err != nil || len(vs) != 1 || string(vs[0].Value) != "v" {
			t.Fatalf("read at R=%d: %v %v", r, vs, err)
		}
		a.bg.Wait() // stragglers and read repair
		t.Logf("R=%d: %d requests over the network, %v", r, counters["a"].total()-before, took)
		return took
	}
	sent := func(f func()) int {
		before := counters["a"].total()
		f()
		return counters["a"].total() - before
	}
	if n := sent(func() { read(1) }); n != 0 {
		t.Fatalf("a read at R=1 on a replica sent %d requests; it is a local read", n)
	}
	if n := sent(func() { read(2) }); n != 1 {
		t.Fatalf("a read at R=2 sent %d requests, want 1 (this node and one other)", n)
	}
	// One peer's link cut, then the other's: the request to the cut one
	// waits for the timeout (500 ms); the read asks the third replica
	// after SpeculativeRead and does not wait for it.
	speculated := false
	for _, cut := range []string{"b", "c"} {
		net.Heal()
		a.detector.forgive()
		net.Block("a", cut)
		var took time.Duration
		n := sent(func() { took = read(2) })
		if took >= cfg.RequestTimeout/2 {
			t.Fatalf("a read at R=2 with %s unreachable took %v: it waited for the request timeout", cut, took)
		}
		speculated = speculated || n == 2
	}
	if !speculated {
		t.Fatal("neither cut replica was asked first: the test did not exercise the speculative read")
	}
}
