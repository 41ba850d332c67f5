package dynamo

import (
	"context"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// Observed from outside: right after a cluster formed, with every node
// up, r=3 failed with "read reached 0 of the 3 replicas" because the
// coordinator did not ask a replica its failure detector distrusted. A
// request that needs more replicas than the detector trusts asks the
// distrusted ones before it answers 503.
func TestRequestsNeedingEveryReplicaAskDistrustedOnes(t *testing.T) {
	c := newCluster(t, 41, testConfig(), "n1", "n2", "n3")
	n1 := c.node("n1")
	put(t, n1, "k", "v", nil, 3)
	// n1 distrusts n2 (two definite failures), though n2 is up.
	n1.detector.failed("n2", false)
	n1.detector.failed("n2", false)
	if n1.healthy("n2") {
		t.Fatal("the detector does not distrust n2")
	}
	vs, err := n1.Get(context.Background(), []byte("k"), 3)
	if err != nil || len(vs) != 1 {
		t.Fatalf("r=3 with every node up: %v %v", valuesOf(vs), err)
	}
	if _, err := n1.Put(context.Background(), []byte("k"), WriteRequest{Context: vclock.Context(vs), Value: []byte("v2"), W: 3}); err != nil {
		t.Fatalf("w=3 with every node up: %v", err)
	}
	// With n2 really down, the answer is still a clear 503.
	c.crash("n2")
	if _, err := n1.Get(context.Background(), []byte("k"), 3); err == nil {
		t.Fatal("r=3 with a node down succeeded")
	}
}

// The detector on a clock the test moves: one slow answer is not a dead
// node, two are; a definite failure is at once; the routing-around lasts
// the backoff, doubling per consecutive failure up to 8×; when it runs out
// the next request is the probe; an answer clears everything.
func TestOneSlowAnswerIsNotADeadNode(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	const backoff = 100 * time.Millisecond
	d := newDetector(backoff, clock)
	d.failed("n2", true)
	if d.isDown("n2") {
		t.Fatal("one slow answer marked n2 down")
	}
	d.failed("n2", true) // the second strike: down for backoff << 1
	if !d.isDown("n2") {
		t.Fatal("two slow answers in a row did not")
	}
	now = now.Add(2*backoff - time.Millisecond)
	if !d.isDown("n2") {
		t.Fatal("up again before its backoff (2× after two strikes) ran out")
	}
	now = now.Add(2 * time.Millisecond)
	if d.isDown("n2") {
		t.Fatal("still down after its backoff ran out: the next request must probe it")
	}
	d.succeeded("n2")
	d.failed("n2", false)
	if !d.isDown("n2") {
		t.Fatal("a definite failure did not")
	}
	// Consecutive definite failures: backoff × 1, 2, 4, 8, 8.
	d.succeeded("n3")
	for i, want := range []time.Duration{1, 2, 4, 8, 8} {
		d.failed("n3", false)
		now = now.Add(want*backoff - time.Millisecond)
		if !d.isDown("n3") {
			t.Fatalf("failure %d: up before %v", i+1, want*backoff)
		}
		now = now.Add(2 * time.Millisecond)
		if d.isDown("n3") {
			t.Fatalf("failure %d: down past %v", i+1, want*backoff)
		}
	}
	d.succeeded("n3")
	d.failed("n3", false)
	now = now.Add(backoff + time.Millisecond)
	if d.isDown("n3") {
		t.Fatal("an answer did not reset the backoff")
	}
}
