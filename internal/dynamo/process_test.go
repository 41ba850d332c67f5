package dynamo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/client"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

type proc struct {
	name, http, peer, gossip, data string
	key                            string // cluster key file ("": none)
	cmd                            *exec.Cmd
	log                            *os.File
}

func (p *proc) start(t *testing.T, bin string, join string, extra ...string) {
	t.Helper()
	args := []string{"dynamo", "node", "--id", p.name, "--addr", p.http, "--peer-addr", p.peer, "--gossip", p.gossip, "--data", p.data,
		"--sync", "always", "--gossip-fast", "--hint-interval", "200ms", "--sync-interval", "1s",
		"--request-timeout", "300ms", "--debug"}
	if p.key != "" {
		args = append(args, "--cluster-key", p.key)
	}
	if join != "" {
		args = append(args, "--join", join)
	}
	p.cmd = exec.Command(bin, append(args, extra...)...)
	var err error
	if p.log, err = os.OpenFile(filepath.Join(filepath.Dir(p.data), p.name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (p *proc) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(70 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
	p.log.Close()
}

// killAtEnd kills the processes when the test ends and, if it failed,
// logs the last lines of each one's log (dir/NAME.log).
func killAtEnd(t *testing.T, dir string, procs func() []*proc) {
	t.Cleanup(func() {
		for _, p := range procs() {
			p.stop(syscall.SIGKILL)
		}
		if t.Failed() {
			for _, p := range procs() {
				b, _ := os.ReadFile(filepath.Join(dir, p.name+".log"))
				lines := strings.Split(string(b), "\n")
				// Membership changes say most about a failed stage; they
				// are few, so all of them are shown.
				var members []string
				for _, l := range lines {
					if strings.Contains(l, "msg=member ") || strings.Contains(l, "ring changed") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") ||
						strings.Contains(l, "[INFO]") || strings.Contains(l, "[WARN]") || strings.Contains(l, "[ERR]") { // memberlist's own, logged at debug: suspicions, failures, drops
						members = append(members, l)
					}
				}
				t.Logf("--- %s (membership)\n%s", p.name, strings.Join(members, "\n"))
				t.Logf("--- %s (last lines)\n%s", p.name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		}
	})
}

// writeKey writes a fresh cluster key file into dir.
func writeKey(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("cluster-%d.key", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(auth.NewKeyText()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func memberStates(c *client.Client) map[string]string {
	raw, err := c.Cluster(context.Background())
	if err != nil {
		return nil
	}
	var info ClusterInfo
	_ = json.Unmarshal(raw, &info)
	out := map[string]string{}
	for _, m := range info.Members {
		out[m.Name] = string(m.State)
	}
	return out
}

// Real processes: three `scalelab dynamo node` processes gossiping on
// loopback with --sync always. One is killed with SIGKILL in the middle
// of a write load and restarted on its data directory; a fourth joins and
// then leaves gracefully. Every acknowledged write must be readable with
// R=3 at each stage, and at the end the once-killed node alone must hold
// all of them.
func TestRealProcessesKillRestartJoinLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	bin := proctest.Binary(t)
	dir := t.TempDir()
	nodes := make([]*proc, 4)
	// As a real cluster runs: peers and gossip under a cluster key.
	key := writeKey(t, dir)
	for i := range nodes {
		name := fmt.Sprint("p", i+1)
		nodes[i] = &proc{name: name, http: proctest.FreeAddr(t), peer: proctest.FreeAddr(t), gossip: proctest.FreeAddr(t),
			data: filepath.Join(dir, name), key: key}
	}
	killAtEnd(t, dir, func() []*proc { return nodes })
	seed := nodes[0].gossip
	for i, p := range nodes[:3] {
		join := seed
		if i == 0 {
			join = ""
		}
		p.start(t, bin, join)
	}
	clients := make([]*client.Client, 4)
	for i, p := range nodes {
		clients[i] = client.New("http://" + p.http)
	}
	allAlive := func(c *client.Client, names ...string) bool {
		st := memberStates(c)
		for _, n := range names {
			if st[n] != "alive" {
				return false
			}
		}
		return true
	}
	testsvc.WaitUntil(t, "three alive members", 20*time.Second, func() bool { return allAlive(clients[0], "p1", "p2", "p3") && allAlive(clients[2], "p1", "p2", "p3") })
	// Each node serves its console at /ui/: its own view of the ring.
	testsvc.WaitUntil(t, "p2's console to draw the ring of three", 5*time.Second, func() bool {
		resp, err := http.Get("http://" + nodes[1].http + "/ui/console/state")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Controls bool
			Dynamo   struct {
				Nodes []NodeView
				Ring  []Arc
			}
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil || st.Controls || len(st.Dynamo.Nodes) != 1 || st.Dynamo.Nodes[0].Name != "p2" {
			return false
		}
		owners := map[string]bool{}
		for _, a := range st.Dynamo.Ring {
			owners[a.Owner] = true
		}
		return len(owners) == 3
	})

	ctx := context.Background()
	acked := map[string]string{}
	write := func(i int, via *client.Client) {
		key, value := fmt.Sprint("key-", i), fmt.Sprint("value-", i)
		if _, err := via.Put(ctx, key, []byte(value), "", 2); err == nil {
			acked[key] = value
		}
	}
	for i := 0; i < 150; i++ {
		write(i, clients[i%3])
	}
	nodes[1].stop(syscall.SIGKILL) // p2
	for i := 150; i < 300; i++ {
		write(i, []*client.Client{clients[0], clients[2]}[i%2])
	}
	testsvc.WaitUntil(t, "p1 to see p2 down", 20*time.Second, func() bool {
		s := memberStates(clients[0])["p2"]
		return s == "dead" || s == "suspect"
	})
	if len(acked) < 290 {
		t.Fatalf("only %d of 300 writes acknowledged with one node of three down (sloppy quorum should take them)", len(acked))
	}
	nodes[1].start(t, bin, seed) // restart on its data
	testsvc.WaitUntil(t, "p2 back", 20*time.Second, func() bool { return allAlive(clients[0], "p2") && allAlive(clients[1], "p1", "p3") })

	readAll := func(stage string, via []*client.Client) {
		t.Helper()
		testsvc.WaitUntil(t, stage+": every acknowledged write readable with R=3", 30*time.Second, func() bool {
			for i := 0; i < 300; i++ {
				key := fmt.Sprint("key-", i)
				want, ok := acked[key]
				if !ok {
					continue
				}
				res, err := via[i%len(via)].Get(ctx, key, 3)
				if err != nil || len(res.Values) != 1 || string(res.Values[0]) != want {
					return false
				}
			}
			return true
		})
	}
	readAll("after the restart", clients[:3])
	// A fourth node joins, takes ranges, then leaves gracefully.
	nodes[3].start(t, bin, seed, "--leave-on-shutdown")
	testsvc.WaitUntil(t, "p4 alive everywhere", 20*time.Second, func() bool {
		return allAlive(clients[0], "p4") && allAlive(clients[1], "p4") && allAlive(clients[2], "p4")
	})
	readAll("after p4 joined", clients)
	nodes[3].stop(syscall.SIGINT)
	seen := ""
	testsvc.WaitUntil(t, "p4 to have left", 20*time.Second, func() bool {
		if s := memberStates(clients[0])["p4"]; s != seen {
			seen = s
			t.Logf("p1 sees p4 %q", s)
		}
		return seen == "left"
	})
	readAll("after p4 left", clients[:3])

	// p2's own replicas came back through hinted hand-off, anti-entropy
	// and p4's hand-off: with p1 and p3 killed, p2 alone answers R=1 for
	// every acknowledged write.
	nodes[0].stop(syscall.SIGKILL)
	nodes[2].stop(syscall.SIGKILL)
	for i := 0; i < 300; i++ {
		key := fmt.Sprint("key-", i)
		want, ok := acked[key]
		if !ok {
			continue
		}
		res, err := clients[1].Get(ctx, key, 1)
		if err != nil || len(res.Values) != 1 || string(res.Values[0]) != want {
			t.Fatalf("p2 alone: %s = %+v, %v; want %s", key, res, err, want)
		}
	}
}
