package raftkv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

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

// `up`'s cluster serves etcd's API: clientv3 puts and reads through it,
// and it keeps answering while a node is stopped (requests go to the
// running ones). Closing the cluster stops the gRPC server.
func TestLocalClusterServesEtcdAPI(t *testing.T) {
	d := &host.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(), Engines: host.Engines{Data: t.TempDir()}}
	sys, err := Factory("127.0.0.1:0").New(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	c := sys.(*LocalCluster)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = c.Close(context.Background())
		}
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.EtcdAddr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testsvc.WaitUntil(t, "a leader", 10*time.Second, func() bool { return c.leader() != 0 })
	for i := range 6 { // round robin: every node serves some
		if _, err := cli.Put(ctx, fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if err := c.StopNode(c.ids[0]); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		resp, err := cli.Get(ctx, fmt.Sprint("k", i))
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != fmt.Sprint("v", i) {
			t.Fatalf("get k%d with node 1 stopped: %+v %v", i, resp, err)
		}
		if resp.Header.MemberId == c.ids[0] {
			t.Fatalf("a stopped node answered")
		}
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed = true
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	if _, err := cli.Get(short, "k0"); err == nil {
		t.Fatal("etcd's API still answers after Close")
	}
}
