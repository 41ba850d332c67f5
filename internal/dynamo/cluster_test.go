package dynamo

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/store"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// testCluster is an in-process cluster on a fault-injecting Network with a
// static membership: failures are seen by each node's own detector.
type testCluster struct {
	t       *testing.T
	dir     string
	cfg     Config
	net     *Network
	members *Static
	mu      sync.Mutex
	nodes   map[string]*Node
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.VNodes = 16
	cfg.RequestTimeout = 500 * time.Millisecond // room for a slow fsync on a loaded machine: a replica write must not time out in a test of something else
	cfg.FailureBackoff = 100 * time.Millisecond
	cfg.HintInterval = time.Hour // tests drive background work explicitly
	cfg.SyncInterval = time.Hour
	cfg.MerkleDepth = 4
	return cfg
}

func newCluster(t *testing.T, seed uint64, cfg Config, names ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, dir: t.TempDir(), cfg: cfg, net: NewNetwork(seed), members: NewStatic(names...), nodes: map[string]*Node{}}
	for _, name := range names {
		c.start(name)
	}
	t.Cleanup(func() {
		for _, n := range c.all() {
			_ = n.Close()
		}
	})
	return c
}

func (c *testCluster) start(name string) *Node {
	c.t.Helper()
	cfg := c.cfg
	cfg.ID = name
	cfg.DataDir = filepath.Join(c.dir, name)
	n, err := Open(cfg, c.members, c.net.Transport(name))
	if err != nil {
		c.t.Fatal(err)
	}
	c.net.Attach(name, n.Handle)
	c.mu.Lock()
	c.nodes[name] = n
	c.mu.Unlock()
	return n
}

// crash takes a node off the network and closes it (its file stays).
func (c *testCluster) crash(name string) {
	c.net.Detach(name)
	c.mu.Lock()
	n := c.nodes[name]
	delete(c.nodes, name)
	c.mu.Unlock()
	if n != nil {
		_ = n.Close()
	}
}

func (c *testCluster) node(name string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

func (c *testCluster) all() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}

// converge heals the network and runs hinted hand-off and anti-entropy on
// every live node until nothing changes (bounded).
func (c *testCluster) converge() {
	c.t.Helper()
	c.net.Heal()
	ctx := context.Background()
	for round := 0; round < 4; round++ {
		// Requests sent before the heal may still be failing: let them
		// finish, then forgive, as if the detectors' backoff had run out.
		for _, n := range c.all() {
			n.bg.Wait()
		}
		for _, n := range c.all() {
			n.detector.forgive()
		}
		for _, n := range c.all() {
			n.deliverHints(ctx)
		}
		for _, n := range c.all() {
			_ = n.SyncOnce(ctx)
		}
	}
	for _, n := range c.all() {
		n.bg.Wait()
	}
}

// replicas returns, for key, each preference-list node's stored versions
// (its own replica, not hints).
func (c *testCluster) replicas(key string) map[string][]vclock.Version {
	out := map[string][]vclock.Version{}
	for _, n := range c.all() {
		for _, owner := range n.Ring().PreferenceList([]byte(key), c.cfg.N) {
			if owner == n.ID() {
				vs, err := n.store.Get([]byte(key))
				if err != nil {
					c.t.Fatal(err)
				}
				out[n.ID()] = vs
			}
		}
	}
	return out
}

func valuesOf(vs []vclock.Version) []string {
	var out []string
	for _, v := range vs {
		if v.Tombstone {
			out = append(out, "<deleted>")
		} else {
			out = append(out, string(v.Value))
		}
	}
	sort.Strings(out)
	return out
}

func put(t *testing.T, n *Node, key, value string, ctx vclock.Clock, w int) vclock.Clock {
	t.Helper()
	clock, err := n.Put(context.Background(), []byte(key), WriteRequest{Context: ctx, Value: []byte(value), W: w})
	if err != nil {
		t.Fatalf("put %s=%s via %s: %v", key, value, n.ID(), err)
	}
	return clock
}

func get(t *testing.T, n *Node, key string, r int) []vclock.Version {
	t.Helper()
	vs, err := n.Get(context.Background(), []byte(key), r)
	if err != nil {
		t.Fatalf("get %s via %s: %v", key, n.ID(), err)
	}
	return vs
}

func TestPutGetOverwriteAndSiblings(t *testing.T) {
	c := newCluster(t, 1, testConfig(), "n1", "n2", "n3")
	n1, n2, n3 := c.node("n1"), c.node("n2"), c.node("n3")
	ctx1 := put(t, n1, "k", "v1", nil, 0)
	if got := valuesOf(get(t, n2, "k", 0)); fmt.Sprint(got) != "[v1]" {
		t.Fatalf("read after write: %v", got)
	}
	put(t, n3, "k", "v2", ctx1, 0) // replaces v1
	if got := valuesOf(get(t, n1, "k", 3)); fmt.Sprint(got) != "[v2]" {
		t.Fatalf("overwrite: %v", got)
	}
	// Two writers with the same stale context: siblings.
	put(t, n1, "k", "a", ctx1, 0)
	put(t, n2, "k", "b", ctx1, 0)
	vs := get(t, n3, "k", 3)
	if got := valuesOf(vs); fmt.Sprint(got) != "[a b v2]" {
		t.Fatalf("concurrent writes: %v", got)
	}
	// Resolving with the merged context leaves one version everywhere.
	put(t, n2, "k", "resolved", vclock.Context(vs), 0)
	c.converge()
	for node, vs := range c.replicas("k") {
		if got := valuesOf(vs); fmt.Sprint(got) != "[resolved]" {
			t.Fatalf("%s holds %v", node, got)
		}
	}
}

// A preferred node is down: the write goes to a stand-in with a hint,
// reads still see it, and hinted hand-off delivers it when the node is back.
func TestSloppyQuorumAndHintedHandoff(t *testing.T) {
	c := newCluster(t, 2, testConfig(), "n1", "n2", "n3", "n4")
	key := "hinted-key"
	pref := c.node("n1").Ring().PreferenceList([]byte(key), 3)
	var outside string
	for _, n := range []string{"n1", "n2", "n3", "n4"} {
		if n != pref[0] && n != pref[1] && n != pref[2] {
			outside = n
		}
	}
	down := pref[1]
	c.crash(down)
	coord := c.node(pref[0])
	put(t, coord, key, "while-down", nil, 3) // W=3 needs the stand-in
	if st := coord.metrics.snapshot(); st.HintsStored == 0 {
		t.Fatal("no hint stored")
	}
	if targets, _ := c.node(outside).store.HintTargets(); fmt.Sprint(targets) != "["+down+"]" {
		t.Fatalf("stand-in %s holds hints for %v, want %s", outside, targets, down)
	}
	c.start(down)
	c.converge()
	vs, _ := c.node(down).store.Get([]byte(key))
	if got := valuesOf(vs); fmt.Sprint(got) != "[while-down]" {
		t.Fatalf("after hand-off %s holds %v", down, got)
	}
	if targets, _ := c.node(outside).store.HintTargets(); len(targets) != 0 {
		t.Fatalf("hints left after hand-off: %v", targets)
	}
}

func TestQuorumUnavailable(t *testing.T) {
	c := newCluster(t, 3, testConfig(), "n1", "n2", "n3")
	c.crash("n2")
	c.crash("n3")
	_, err := c.node("n1").Put(context.Background(), []byte("k"), WriteRequest{Value: []byte("x")})
	if err == nil || !contains(err.Error(), "reached 1 of the 2") {
		t.Fatalf("W=2 with one node: %v", err)
	}
	put(t, c.node("n1"), "k", "x", nil, 1) // W=1 is still writable
	if _, err := c.node("n1").Get(context.Background(), []byte("k"), 2); err == nil {
		t.Fatal("R=2 with one node succeeded")
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// A partition in the middle of a cluster: both sides keep accepting writes
// (sloppy quorum), and after the heal the concurrent writes are siblings.
func TestPartitionedWritesBecomeSiblings(t *testing.T) {
	names := []string{"n1", "n2", "n3", "n4", "n5"}
	c := newCluster(t, 4, testConfig(), names...)
	base := put(t, c.node("n1"), "cart", "empty", nil, 0)
	c.net.Partition([]string{"n1", "n2"}, []string{"n3", "n4", "n5"})
	put(t, c.node("n1"), "cart", "left-side", base, 2)
	put(t, c.node("n4"), "cart", "right-side", base, 2)
	c.converge()
	for node, vs := range c.replicas("cart") {
		if got := valuesOf(vs); fmt.Sprint(got) != "[left-side right-side]" {
			t.Fatalf("%s holds %v", node, got)
		}
	}
}

// Anti-entropy alone (no reads, no hints) repairs a replica that missed writes.
func TestAntiEntropyRepairsMissedWrites(t *testing.T) {
	c := newCluster(t, 5, testConfig(), "n1", "n2", "n3")
	c.net.Partition([]string{"n3"}, []string{"n1", "n2"})
	for i := 0; i < 200; i++ {
		put(t, c.node("n1"), fmt.Sprint("k", i), fmt.Sprint("v", i), nil, 2)
	}
	for _, n := range c.all() {
		n.bg.Wait()
	}
	c.net.Heal()
	c.node("n3").detector.forgive()
	_ = c.node("n3").SyncOnce(context.Background())
	missing := 0
	for i := 0; i < 200; i++ {
		if vs, _ := c.node("n3").store.Get([]byte(fmt.Sprint("k", i))); len(vs) != 1 {
			missing++
		}
	}
	if missing != 0 || c.node("n3").metrics.snapshot().AntiEntropyKeys < 200 {
		t.Fatalf("after one anti-entropy pass n3 misses %d keys (%+v)", missing, c.node("n3").metrics.snapshot())
	}
}

// Nodes joining and leaving move ranges without losing a write, and each
// node ends up holding only what it replicates.
func TestRingChangesMoveData(t *testing.T) {
	c := newCluster(t, 6, testConfig(), "n1", "n2", "n3")
	const keys = 300
	for i := 0; i < keys; i++ {
		put(t, c.node(fmt.Sprint("n", 1+i%3)), fmt.Sprint("key-", i), fmt.Sprint(i), nil, 3)
	}
	check := func(stage string) {
		t.Helper()
		c.converge()
		for i := 0; i < keys; i++ {
			key := fmt.Sprint("key-", i)
			reps := c.replicas(key)
			if len(reps) != 3 {
				t.Fatalf("%s: %s has %d replicas", stage, key, len(reps))
			}
			for node, vs := range reps {
				if fmt.Sprint(valuesOf(vs)) != fmt.Sprint("[", i, "]") {
					t.Fatalf("%s: %s on %s holds %v", stage, key, node, valuesOf(vs))
				}
			}
		}
		for _, n := range c.all() {
			_ = n.store.Scan(0, 0, func(key, raw []byte) error {
				if _, ok := c.replicas(string(key))[n.ID()]; !ok {
					t.Fatalf("%s: %s still holds %s, which it does not replicate", stage, n.ID(), key)
				}
				return nil
			})
		}
	}
	c.members.Set("n4", Alive)
	c.start("n4")
	check("after n4 joined")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.node("n2").Leave(ctx); err != nil {
		t.Fatal(err)
	}
	c.members.Set("n2", Left)
	c.crash("n2")
	check("after n2 left")
}

func TestTombstonesAreReaped(t *testing.T) {
	cfg := testConfig()
	cfg.TombstoneGrace = 50 * time.Millisecond
	c := newCluster(t, 7, cfg, "n1", "n2", "n3")
	ctx := put(t, c.node("n1"), "k", "v", nil, 3)
	if _, err := c.node("n2").Put(context.Background(), []byte("k"), WriteRequest{Context: ctx, Tombstone: true, W: 3}); err != nil {
		t.Fatal(err)
	}
	if got := valuesOf(get(t, c.node("n3"), "k", 3)); fmt.Sprint(got) != "[<deleted>]" {
		t.Fatalf("after delete: %v", got)
	}
	time.Sleep(60 * time.Millisecond)
	c.converge()
	for _, n := range c.all() {
		if vs, _ := n.store.Get([]byte("k")); len(vs) != 0 || n.metrics.snapshot().TombstonesReaped != 1 {
			t.Fatalf("%s still holds %v", n.ID(), vs)
		}
	}
}

var _ = store.SyncAlways
