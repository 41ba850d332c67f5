package dynamo

import (
	"context"
	"testing"

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

func TestOneSlowAnswerIsNotADeadNode(t *testing.T) {
	d := newDetector(testConfig().FailureBackoff)
	d.failed("n2", true)
	if d.isDown("n2") {
		t.Fatal("one slow answer marked n2 down")
	}
	d.failed("n2", true)
	if !d.isDown("n2") {
		t.Fatal("two slow answers in a row did not")
	}
	d.succeeded("n2")
	d.failed("n2", false)
	if !d.isDown("n2") {
		t.Fatal("a definite failure did not")
	}
}
