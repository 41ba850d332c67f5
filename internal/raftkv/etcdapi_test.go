package raftkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// serveEtcd serves node id's etcd API on a loopback port for the test's
// duration and returns a clientv3 client of it.
func serveEtcd(t *testing.T, c *cluster, id uint64) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	limits := GRPCLimits{MaxConns: 64, MaxStreams: 64, MaxRequest: 2 << 20, IdleConnection: time.Minute}
	addr, done, err := ServeEtcdGRPC(ctx, "127.0.0.1:0", NewEtcdKV(c.nodes[id], time.Second, 1000), limits, prometheus.NewRegistry(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr.String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gRPC server of node %d: %v", id, err)
		}
	})
	return cli
}

// etcd's own client, unchanged, against raftkv: puts, gets (linearizable
// and serializable), prefixes, deletes, compare-and-swap transactions and
// etcd's errors, through a follower and the leader.
func TestEtcdClientV3(t *testing.T) {
	c := newCluster(t, 21, 3)
	lead := c.leader()
	follower := lead%3 + 1
	cf, cl := serveEtcd(t, c, follower), serveEtcd(t, c, lead)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	put, err := cf.Put(ctx, "app/a", "1")
	if err != nil || put.Header.Revision != 1 || put.Header.MemberId != follower {
		t.Fatalf("put through a follower: %v %v", put, err)
	}
	if _, err := cl.Put(ctx, "app/b", "2"); err != nil {
		t.Fatal(err)
	}
	again, err := cl.Put(ctx, "app/a", "3", clientv3.WithPrevKV())
	if err != nil || string(again.PrevKv.Value) != "1" || again.Header.Revision != 3 {
		t.Fatalf("put with prev_kv: %v %v", again, err)
	}
	// A linearizable get through the follower sees the leader's write.
	got, err := cf.Get(ctx, "app/a")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "3" || got.Kvs[0].Version != 2 ||
		got.Kvs[0].CreateRevision != 1 || got.Kvs[0].ModRevision != 3 || got.Header.Revision != 3 {
		t.Fatalf("linearizable get: %v %v", got, err)
	}
	prefix, err := cl.Get(ctx, "app/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend))
	if err != nil || prefix.Count != 2 || string(prefix.Kvs[0].Key) != "app/a" || string(prefix.Kvs[1].Key) != "app/b" {
		t.Fatalf("prefix, newest first: %v %v", prefix, err)
	}
	ser, err := cl.Get(ctx, "app/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
	if err != nil || ser.Count != 2 || len(ser.Kvs) != 0 {
		t.Fatalf("serializable count: %v %v", ser, err)
	}

	// Compare-and-swap on the mod revision, the way etcd's users lock.
	cas := func(cli *clientv3.Client, rev int64, value string) *clientv3.TxnResponse {
		t.Helper()
		r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("app/a"), "=", rev)).
			Then(clientv3.OpPut("app/a", value)).Else(clientv3.OpGet("app/a")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := cas(cf, 3, "4"); !r.Succeeded || r.Header.Revision != 4 {
		t.Fatalf("CAS at the right revision: %v", r)
	}
	if r := cas(cl, 3, "5"); r.Succeeded || string(r.Responses[0].GetResponseRange().Kvs[0].Value) != "4" {
		t.Fatalf("CAS at a stale revision: %v", r)
	}
	create, err := cl.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("lock"), "=", 0)).Then(clientv3.OpPut("lock", "me")).Commit()
	if err != nil || !create.Succeeded {
		t.Fatalf("create if absent: %v %v", create, err)
	}
	// A transaction that only reads takes no revision.
	ro, err := cf.Txn(ctx).If(clientv3.Compare(clientv3.Value("lock"), "=", "me")).Then(clientv3.OpGet("app/", clientv3.WithPrefix())).Commit()
	if err != nil || !ro.Succeeded || ro.Header.Revision != 5 || len(ro.Responses[0].GetResponseRange().Kvs) != 2 {
		t.Fatalf("read-only txn: %v %v", ro, err)
	}

	del, err := cf.Delete(ctx, "app/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	if err != nil || del.Deleted != 2 || len(del.PrevKvs) != 2 || del.Header.Revision != 6 {
		t.Fatalf("delete prefix: %v %v", del, err)
	}
	if gone, err := cl.Get(ctx, "app/", clientv3.WithPrefix()); err != nil || gone.Count != 0 {
		t.Fatalf("after delete: %v %v", gone, err)
	}

	// etcd's errors, as etcd's client knows them.
	for name, c := range map[string]struct {
		err  error
		want error
	}{
		"empty key":          {func() error { _, err := cl.Put(ctx, "", "x"); return err }(), rpctypes.ErrEmptyKey},
		"old revision":       {func() error { _, err := cl.Get(ctx, "lock", clientv3.WithRev(2)); return err }(), rpctypes.ErrCompacted},
		"future revision":    {func() error { _, err := cl.Get(ctx, "lock", clientv3.WithRev(99)); return err }(), rpctypes.ErrFutureRev},
		"ignore_value, gone": {func() error { _, err := cl.Put(ctx, "nope", "", clientv3.WithIgnoreValue()); return err }(), rpctypes.ErrKeyNotFound},
		"duplicate key": {func() error {
			_, err := cl.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
			return err
		}(), rpctypes.ErrDuplicateKey},
		"too large": {func() error { _, err := cl.Put(ctx, "big", strings.Repeat("x", 1001)); return err }(), rpctypes.ErrRequestTooLarge},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", name, c.err, c.want)
		}
	}
	if _, err := cl.Put(ctx, "leased", "x", clientv3.WithLease(7)); status.Code(err) != codes.Unimplemented {
		t.Errorf("a put with a lease: %v, want Unimplemented", err)
	}
	if _, err := cl.Grant(ctx, 10); status.Code(err) != codes.Unimplemented {
		t.Errorf("lease grant: %v, want Unimplemented", err)
	}
	if r, err := cl.Get(ctx, "lock"); err != nil || r.Header.Revision != 6 {
		t.Fatalf("the refused requests changed the store: %v %v", r, err)
	}
	if _, err := cl.Compact(ctx, 6); err != nil {
		t.Fatalf("compact at the current revision: %v", err)
	}
}

// A write sent to a member that knows no leader (cut off, or during an
// election) waits for one within the request's time instead of failing at
// once — etcd's client does not retry a failed write — and, when none
// comes in time, fails with etcd's "no leader" without being applied.
func TestEtcdWriteWaitsOutAnElection(t *testing.T) {
	c := newCluster(t, 23, 3)
	lead := c.leader()
	f := lead%3 + 1
	cli := serveEtcd(t, c, f) // requests wait at most 1 s
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cutOff := func() {
		t.Helper()
		c.net.Isolate(f, c.ids)
		testsvc.WaitUntil(t, "the cut-off member to lose its leader", 5*time.Second, func() bool { return c.nodes[f].Leader() == 0 })
	}

	cutOff()
	if _, err := cli.Put(ctx, "k", "lost"); !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Fatalf("a put with no leader for the whole request: %v, want %v", err, rpctypes.ErrNoLeader)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("t", "lost")).Commit(); !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Fatalf("a transaction with no leader for the whole request: %v, want %v", err, rpctypes.ErrNoLeader)
	}

	// The same member, the leader back 100 ms into the request.
	heal := time.AfterFunc(100*time.Millisecond, c.net.Heal)
	defer heal.Stop()
	if _, err := cli.Put(ctx, "k", "kept"); err != nil {
		t.Fatalf("a put sent while the member knew no leader, the leader back within the request: %v", err)
	}
	cutOff()
	heal = time.AfterFunc(100*time.Millisecond, c.net.Heal)
	defer heal.Stop()
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("t", "kept")).Commit(); err != nil {
		t.Fatalf("a transaction sent while the member knew no leader: %v", err)
	}
	for key, want := range map[string]string{"k": "kept", "t": "kept"} {
		r, err := cli.Get(ctx, key)
		if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != want || r.Kvs[0].Version != 1 {
			t.Fatalf("%s after the election: %v %v; want %q written once", key, r, err, want)
		}
	}
}

// With the leader cut off from the rest, a linearizable get through it
// cannot answer (it would be stale), while a serializable one answers
// from its own state, as in etcd.
func TestEtcdLinearizableByDefaultSerializableOnRequest(t *testing.T) {
	c := newCluster(t, 22, 3)
	lead := c.leader()
	cli := serveEtcd(t, c, lead)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "before"); err != nil {
		t.Fatal(err)
	}
	var others []uint64
	for id := range c.nodes {
		if id != lead {
			others = append(others, id)
		}
	}
	c.net.Partition([]uint64{lead}, others)
	short, stop := context.WithTimeout(ctx, 2*time.Second)
	defer stop()
	if r, err := cli.Get(short, "k"); err == nil {
		t.Fatalf("a linearizable get from a cut-off leader answered: %v", r)
	}
	r, err := cli.Get(ctx, "k", clientv3.WithSerializable())
	if err != nil || string(r.Kvs[0].Value) != "before" {
		t.Fatalf("a serializable get from a cut-off leader: %v %v", r, err)
	}
}

// The linearizability check of TestLinearizableUnderFaults, with every
// operation made through etcd's client over gRPC: gets, puts,
// compare-and-swaps (a Txn on the mod revision) and deletes on one key,
// through random members, while the network isolates leaders, blocks
// links, delays and loses messages. etcd's API has no exactly-once
// retries, so a write whose answer is lost is not retried: it is recorded
// as unknown (it may or may not have happened).
func TestLinearizableThroughEtcdAPI(t *testing.T) {
	for seed := uint64(1); seed <= uint64(max(*schedules/10, 2)); seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runEtcdLinearizability(t, seed) })
	}
}

func runEtcdLinearizability(t *testing.T, seed uint64) {
	c := newCluster(t, 100+seed, 3)
	c.leader()
	clients := map[uint64]*clientv3.Client{}
	for _, id := range c.ids {
		clients[id] = serveEtcd(t, c, id)
	}
	rng := rand.New(rand.NewPCG(seed, 9))
	rec := &recorder{start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	stop := time.Now().Add(700 * time.Millisecond)
	var wg sync.WaitGroup
	for client := 1; client <= 4; client++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(client)))
			lastRev := int64(0)
			for i := 0; time.Now().Before(stop); i++ {
				cli := clients[c.ids[r.IntN(len(c.ids))]]
				in := CheckInput{Kind: OpKind(r.IntN(4)), Value: fmt.Sprintf("c%d-%d", client, i)}
				if in.Kind == OpCAS {
					in.IfRevision = lastRev
				}
				actx, acancel := context.WithTimeout(ctx, 200*time.Millisecond)
				call := rec.now()
				out, err := etcdOp(actx, cli, in)
				acancel()
				switch {
				case err == nil:
					rec.add(client, in, out, call, rec.now())
					if in.Kind == OpGet && out.Found {
						lastRev = out.Revision
					}
				case in.Kind != OpGet:
					rec.add(client, in, CheckOutput{Unknown: true}, call, math.MaxInt64)
				}
			}
		}(client)
	}
	var log []string
	for time.Now().Before(stop) {
		time.Sleep(time.Duration(40+rng.IntN(60)) * time.Millisecond)
		var lead uint64
		for id, n := range c.nodes {
			if n.Leader() == id {
				lead = id
			}
		}
		log = append(log, networkFault(c, rng, rng.IntN(4), lead))
	}
	wg.Wait()
	c.net.Heal()
	checkHistory(t, rec, filepath.Join(os.TempDir(), fmt.Sprintf("raftkv-etcd-linearizability-seed%d.html", seed)), "seed", seed, "faults", log)
	if len(rec.ops) < 10 {
		t.Fatalf("seed %d: only %d operations completed", seed, len(rec.ops))
	}
}

// etcdOp runs one checked operation on key "x" through clientv3.
func etcdOp(ctx context.Context, cli *clientv3.Client, in CheckInput) (CheckOutput, error) {
	switch in.Kind {
	case OpGet:
		r, err := cli.Get(ctx, "x")
		if err != nil {
			return CheckOutput{}, err
		}
		if len(r.Kvs) == 0 {
			return CheckOutput{}, nil
		}
		return CheckOutput{Found: true, Value: string(r.Kvs[0].Value), Revision: r.Kvs[0].ModRevision}, nil
	case OpPut:
		r, err := cli.Put(ctx, "x", in.Value)
		if err != nil {
			return CheckOutput{}, err
		}
		return CheckOutput{Revision: r.Header.Revision}, nil
	case OpCAS:
		// ModRevision 0 is "absent", as IfRevision 0 is.
		r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("x"), "=", in.IfRevision)).
			Then(clientv3.OpPut("x", in.Value)).Else(clientv3.OpGet("x")).Commit()
		if err != nil {
			return CheckOutput{}, err
		}
		out := CheckOutput{Revision: r.Header.Revision, Applied: r.Succeeded}
		if !r.Succeeded {
			if kvs := r.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				out.Current = kvs[0].ModRevision
			}
		}
		return out, nil
	default:
		r, err := cli.Delete(ctx, "x")
		if err != nil {
			return CheckOutput{}, err
		}
		return CheckOutput{Revision: r.Header.Revision}, nil
	}
}

// etcd's own command-line client, unchanged, against three raftkv
// processes: put, get (linearizable and serializable), txn, del, JSON
// output with the header, and writes going on through the other members
// after the leader is killed.
func TestEtcdctl(t *testing.T) {
	c := startProcCluster(t, true)
	etcdctl := proctest.Tool(t, "etcdctl", "go.etcd.io/etcd/etcdctl/v3")
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(etcdctl, append([]string{"--endpoints", strings.Join(c.grpcAddrs, ","), "--command-timeout", "5s"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if out := run("", "put", "greeting", "hello"); out != "OK" {
		t.Fatalf("put: %q", out)
	}
	run("", "put", "greeting/fr", "bonjour")
	if out := run("", "get", "greeting", "--prefix"); out != "greeting\nhello\ngreeting/fr\nbonjour" {
		t.Fatalf("get --prefix: %q", out)
	}
	if out := run("", "get", "greeting/fr", "--print-value-only", "--consistency", "s"); out != "bonjour" {
		t.Fatalf("serializable get: %q", out)
	}
	// Compare-and-swap, as etcdctl's users write it: on the key's value.
	if out := run("value(\"greeting\") = \"hello\"\n\nput greeting hi\n\nget greeting\n\n", "txn"); out != "SUCCESS\n\nOK" {
		t.Fatalf("txn that holds: %q", out)
	}
	if out := run("value(\"greeting\") = \"hello\"\n\nput greeting hey\n\nget greeting\n\n", "txn"); out != "FAILURE\n\ngreeting\nhi" {
		t.Fatalf("txn that fails: %q", out)
	}
	var js struct {
		Header struct {
			Revision int64  `json:"revision"`
			MemberID uint64 `json:"member_id"`
		} `json:"header"`
		Kvs []struct {
			Version int64 `json:"version"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal([]byte(run("", "get", "greeting", "-w", "json")), &js); err != nil || js.Header.Revision != 3 || js.Kvs[0].Version != 2 || js.Header.MemberID == 0 {
		t.Fatalf("get -w json: %+v %v", js, err)
	}
	if out := run("", "del", "greeting", "--prefix"); out != "2" {
		t.Fatalf("del --prefix: %q", out)
	}
	// The leader dies; etcdctl goes on through the members left.
	var lead int
	for i := range c.addrs {
		if info, err := c.info(i); err == nil && info.Leader == info.ID {
			lead = i
		}
	}
	c.procs[lead].Kill()
	deadline := time.Now().Add(15 * time.Second)
	for {
		cmd := exec.Command(etcdctl, "--endpoints", strings.Join(c.grpcAddrs, ","), "--command-timeout", "2s", "put", "after", "kill")
		if out, err := cmd.CombinedOutput(); err == nil && strings.TrimSpace(string(out)) == "OK" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no write after the leader was killed: %v %s", err, out)
		}
	}
	if out := run("", "get", "after", "--print-value-only"); out != "kill" {
		t.Fatalf("after the kill: %q", out)
	}
}
