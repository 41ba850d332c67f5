package dynamo

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalelab/scalelab/internal/platform/host"
)

// The console's view and buttons on `up`'s cluster: the ring covers every
// node, a crash is seen as one, a partition lets both sides write and the
// two writes come back as siblings once healed.
func TestLocalClusterControls(t *testing.T) {
	c, err := NewLocalCluster(t.TempDir(), []string{"n1", "n2", "n3"}, &host.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	nodes, ring := c.State()
	owners := map[string]int{}
	for _, a := range ring {
		owners[a.Owner]++
	}
	if len(nodes) != 3 || len(owners) != 3 || len(ring) != 3*DefaultConfig().VNodes {
		t.Fatalf("%d nodes, ring of %d arcs over %v", len(nodes), len(ring), owners)
	}
	if err := c.Crash("n9"); err == nil {
		t.Fatal("crashed a node that does not exist")
	}
	if err := c.Crash("n3"); err != nil {
		t.Fatal(err)
	}
	if nodes, _ = c.State(); nodes[2].Up {
		t.Fatal("crashed n3 shows up")
	}
	if err := c.Recover("n3"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n1, n3 := c.nodes[0], c.nodes[2]
	if err := c.Partition([]string{"n1"}, []string{"n2", "n3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.Put(ctx, []byte("k"), WriteRequest{Value: []byte("left"), W: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := n3.Put(ctx, []byte("k"), WriteRequest{Value: []byte("right"), W: 1}); err != nil {
		t.Fatal(err)
	}
	c.Heal()
	for _, n := range c.nodes {
		n.detector.forgive()
	}
	vs, err := n1.Get(ctx, []byte("k"), 3)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]bool{}
	for _, v := range vs {
		values[string(v.Value)] = true
	}
	if !values["left"] || !values["right"] {
		t.Fatalf("after the heal: %v, want both sides' writes as siblings", values)
	}
}
