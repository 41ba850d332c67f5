package raftkv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// Three `scalelab raftkv node` processes with fsync on; the leader is
// killed with SIGKILL in the middle of a write load and restarted on its
// data. Every acknowledged write must be readable (linearizably) from
// every node afterwards, and the restarted node must catch up.
func TestRealProcessesLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	bin := proctest.Binary(t)
	dir := t.TempDir()
	var addrs, peerAddrs [5]string
	var peers []string
	for i := 1; i <= 3; i++ {
		addrs[i], peerAddrs[i] = proctest.FreeAddr(t), proctest.FreeAddr(t)
		peers = append(peers, fmt.Sprintf("%d=%s", i, peerAddrs[i]))
	}
	procs := map[int]*exec.Cmd{}
	addrs[4], peerAddrs[4] = proctest.FreeAddr(t), proctest.FreeAddr(t)
	// As a real cluster runs: peers under a cluster key, membership behind the admin token.
	keyFile := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(auth.NewKeyText()), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(i int, extra ...string) {
		log, _ := os.OpenFile(filepath.Join(dir, fmt.Sprint(i, ".log")), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		args := []string{"raftkv", "node", "--id", fmt.Sprint(i), "--addr", addrs[i], "--peer-addr", peerAddrs[i],
			"--data", filepath.Join(dir, fmt.Sprint(i)), "--tick", "20ms", "--snapshot-every", "100", "--request-timeout", "1s",
			"--cluster-key", keyFile, "--admin-token", testAdminToken}
		if len(extra) == 0 {
			extra = []string{"--peers", strings.Join(peers, ",")}
		}
		cmd := exec.Command(bin, append(args, extra...)...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
	}
	kill := func(i int) {
		_ = procs[i].Process.Signal(syscall.SIGKILL)
		_ = procs[i].Wait()
		delete(procs, i)
	}
	t.Cleanup(func() {
		for i := range procs {
			kill(i)
		}
		if t.Failed() {
			for i := 1; i <= 4; i++ {
				b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprint(i, ".log")))
				lines := strings.Split(string(b), "\n")
				t.Logf("--- node %d\n%s", i, strings.Join(lines[max(0, len(lines)-10):], "\n"))
			}
		}
	})
	for i := 1; i <= 3; i++ {
		start(i)
	}
	cluster := func(i int) (ClusterInfo, error) {
		var info ClusterInfo
		resp, err := http.Get("http://" + addrs[i] + "/v1/cluster")
		if err != nil {
			return info, err
		}
		defer resp.Body.Close()
		return info, json.NewDecoder(resp.Body).Decode(&info)
	}
	leader := func() int {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for i := range procs {
				if info, err := cluster(i); err == nil && info.Leader != 0 && int(info.Leader) == i {
					return i
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no leader")
		return 0
	}
	seq := 0
	put := func(key, value string) {
		seq++
		deadline := time.Now().Add(15 * time.Second)
		for attempt := 0; ; attempt++ {
			for i := range procs {
				req, _ := http.NewRequest("PUT", "http://"+addrs[i]+"/v1/kv/"+key, strings.NewReader(value))
				req.Header.Set("X-Client-ID", "1")
				req.Header.Set("X-Request-Seq", fmt.Sprint(seq))
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("put %s=%s never acknowledged", key, value)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	get := func(i int, key, query string) (string, int) {
		resp, err := http.Get("http://" + addrs[i] + "/v1/kv/" + key + query)
		if err != nil {
			return "", 0
		}
		defer resp.Body.Close()
		var b getBody
		_ = json.NewDecoder(resp.Body).Decode(&b)
		if b.Value == nil {
			return "", resp.StatusCode
		}
		return *b.Value, resp.StatusCode
	}
	lead := leader()
	// Each node serves its console at /ui/: its own view, no controls.
	testsvc.WaitUntil(t, "the leader's console to show it leading", 5*time.Second, func() bool {
		resp, err := http.Get("http://" + addrs[lead] + "/ui/console/state")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Controls bool
			Raftkv   struct{ Nodes []NodeState }
		}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && !st.Controls && len(st.Raftkv.Nodes) == 1 &&
			st.Raftkv.Nodes[0].Role == "leader" && int(st.Raftkv.Nodes[0].ID) == lead
	})
	if resp, err := http.Get("http://" + addrs[lead] + "/ui/console/experiments"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("a node's console runs experiments: %v %v", resp, err)
	}
	for i := 0; i < 150; i++ {
		put(fmt.Sprint("k", i%20), fmt.Sprint(i))
	}
	kill(lead)
	for i := 150; i < 300; i++ {
		put(fmt.Sprint("k", i%20), fmt.Sprint(i))
	}
	start(lead)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if v, st := get(lead, "k19", "?stale=true"); st == 200 && v == "299" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted node did not catch up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 1; i <= 3; i++ {
		for k := 0; k < 20; k++ {
			want := fmt.Sprint(280 + k)
			if v, st := get(i, fmt.Sprint("k", k), ""); st != 200 || v != want {
				t.Fatalf("node %d: k%d = %q (%d), want %s", i, k, v, st, want)
			}
		}
	}

	// A fourth node joins through node 2; then node 1 is removed with the CLI.
	start(4, "--join", "http://"+addrs[2])
	deadline = time.Now().Add(15 * time.Second)
	for {
		if v, st := get(4, "k19", "?stale=true"); st == 200 && v == "299" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the joining node did not receive the data")
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command(bin, "raftkv", "member", "remove", "--server", "http://"+addrs[3], "--id", "1",
		"--admin-token", testAdminToken).CombinedOutput()
	if err != nil {
		t.Fatalf("member remove: %v %s", err, out)
	}
	kill(1)
	put("k0", "after-membership-change")
	info, err := cluster(4)
	if err != nil || fmt.Sprint(info.Members) == "" || len(info.Members) != 3 || info.Members[0].ID != 2 {
		t.Fatalf("members after the change: %+v %v", info.Members, err)
	}
	if v, st := get(4, "k0", ""); st != 200 || v != "after-membership-change" {
		t.Fatalf("node 4 reads k0 = %q (%d)", v, st)
	}
}

// `scalelab experiment run linearizability` end to end: real processes, all three kinds of
// fault, a Porcupine verdict and the report files.
func TestCheckCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	bin := proctest.Binary(t)
	out := t.TempDir()
	var buf strings.Builder
	ok, err := RunCheck(context.Background(), &buf, CheckOptions{Nodes: 3, Duration: 7 * time.Second, Clients: 3,
		Faults: []string{"partition", "kill", "pause"}, Out: out, Seed: 5, Binary: bin})
	if err != nil || !ok {
		t.Fatalf("check: ok=%v err=%v\n%s", ok, err, buf.String())
	}
	report, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(report), "**linearizable**") || !strings.Contains(string(report), " s: ") {
		t.Fatalf("report:\n%s", report)
	}
	if st, err := os.Stat(filepath.Join(out, "history.html")); err != nil || st.Size() == 0 {
		t.Fatalf("no visualisation: %v", err)
	}
}
