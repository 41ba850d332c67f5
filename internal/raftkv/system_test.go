package raftkv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

// The console's fault buttons on `up`'s cluster: a stopped leader is
// replaced, an isolated node falls behind and catches up once healed, a
// restarted node rejoins from its log.
func TestLocalClusterControls(t *testing.T) {
	c, err := NewLocalCluster(t.TempDir(), 3, &host.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	leaderOf := func() (uint64, uint64) { // the leader all running nodes agree on, and its term
		var lead, term uint64
		for _, n := range c.State() {
			if !n.Running {
				continue
			}
			if n.Leader == 0 || (lead != 0 && n.Leader != lead) {
				return 0, 0
			}
			lead, term = n.Leader, n.Term
		}
		return lead, term
	}
	testsvc.WaitUntil(t, "a leader", 10*time.Second, func() bool { l, _ := leaderOf(); return l != 0 })
	old, oldTerm := leaderOf()
	if err := c.StopNode(old); err != nil {
		t.Fatal(err)
	}
	if err := c.StopNode(old); err == nil {
		t.Fatal("stopping a stopped node succeeded")
	}
	testsvc.WaitUntil(t, "a new leader", 10*time.Second, func() bool { l, term := leaderOf(); return l != 0 && l != old && term > oldTerm })
	for _, n := range c.State() {
		if n.ID == old && (n.Running || n.Role != "") {
			t.Fatalf("stopped node shows %+v", n)
		}
	}
	if err := c.RestartNode(old); err != nil {
		t.Fatal(err)
	}
	testsvc.WaitUntil(t, "the restarted node to follow", 10*time.Second, func() bool {
		l, _ := leaderOf()
		for _, n := range c.State() {
			if n.ID == old {
				return n.Running && l != 0 && n.Leader == l
			}
		}
		return false
	})
	lead, _ := leaderOf()
	var follower uint64
	for _, n := range c.State() {
		if n.ID != lead {
			follower = n.ID
		}
	}
	if err := c.IsolateNode(follower); err != nil {
		t.Fatal(err)
	}
	leaderNode := c.nodes[lead-1]
	for i := range 20 {
		if _, err := NewAPI(leaderNode, time.Second, 1024).propose(context.Background(), putCmd(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := func(id uint64) NodeState { return c.State()[id-1] }
	if !st(follower).Isolated || st(follower).Applied >= st(lead).Applied {
		t.Fatalf("isolated follower %+v is not behind the leader %+v", st(follower), st(lead))
	}
	c.Heal()
	testsvc.WaitUntil(t, "the healed follower to catch up", 10*time.Second, func() bool {
		return !st(follower).Isolated && st(follower).Applied >= st(lead).Commit
	})
}

func putCmd(i int) kv.Command {
	return kv.Command{Op: kv.OpPut, Key: []byte(fmt.Sprint("k", i)), Value: []byte("v"), IfRevision: kv.Unconditional}
}
