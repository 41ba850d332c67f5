package autoscale

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The whole loop with real processes: a `scalelab lb serve`, copies of
// `scalelab idgen serve` started by Run. Load through the balancer scales
// the fleet out to max; a copy killed with SIGKILL is replaced; when the
// load stops, the fleet shrinks back to min after the window.
func TestAutoscalerFollowsTheLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	bin := proctest.Binary(t)
	dir := t.TempDir()
	front, admin := proctest.FreeAddr(t), proctest.FreeAddr(t)
	const token = "autoscale-test-token-0123456789abcdef"
	lbCmd := exec.Command(bin, "lb", "serve", "--addr", front, "--admin-addr", admin, "--admin-token", token, "--data", dir,
		"--health-interval", "200ms", "--slow-start", "0s")
	lbLog, _ := os.Create(filepath.Join(dir, "lb.log"))
	lbCmd.Stdout, lbCmd.Stderr = lbLog, lbLog
	if err := lbCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lbCmd.Process.Kill(); _ = lbCmd.Wait() })
	testsvc.WaitUntil(t, "the balancer's admin port", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	var mu sync.Mutex
	var rounds []Round
	cfg := Config{
		Policy:   Policy{Min: 1, Max: 3, Target: 40, Tolerance: 0.1, Window: 2 * time.Second, CoolDown: 500 * time.Millisecond},
		Metric:   MetricRPS,
		Interval: 500 * time.Millisecond,
		Command:  []string{bin, "idgen", "serve", "--addr", "127.0.0.1:{port}", "--data", filepath.Join(dir, "copy-{port}")},
		LBAdmin:  "http://" + admin, LBToken: token, Ready: 20 * time.Second, Drain: 2 * time.Second, LogDir: dir,
		AdminAddr: proctest.FreeAddr(t),
		OnRound: func(r Round) {
			mu.Lock()
			rounds = append(rounds, r)
			mu.Unlock()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	last := func() Round {
		mu.Lock()
		defer mu.Unlock()
		if len(rounds) == 0 {
			return Round{}
		}
		return rounds[len(rounds)-1]
	}
	testsvc.WaitUntil(t, "the first copy registered", 20*time.Second, func() bool { return last().Copies == 1 })
	// ~200 requests/s through the balancer: 5× the target for one copy.
	var load atomic.Bool
	load.Store(true)
	var failed atomic.Int64
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if ctx.Err() != nil {
				return
			}
			if !load.Load() {
				continue
			}
			go func() {
				resp, err := http.Get("http://" + front + "/api/v1/ids")
				if err != nil || resp.StatusCode != 200 {
					if failed.Add(1) <= 3 {
						if err != nil {
							t.Logf("failed: %v", err)
						} else {
							body, _ := io.ReadAll(resp.Body)
							t.Logf("failed: %d %s", resp.StatusCode, body)
						}
					}
				}
				if resp != nil {
					resp.Body.Close()
				}
			}()
		}
	}()
	testsvc.WaitUntil(t, "three copies under load", 40*time.Second, func() bool { return last().Decision.Desired == 3 && last().Copies == 3 })
	checkFleetView(t, "http://"+cfg.AdminAddr, 3)

	// Kill one copy: the next round replaces it.
	victim := copyPIDs(t, dir)[0]
	_ = syscall.Kill(victim, syscall.SIGKILL)
	testsvc.WaitUntil(t, "the killed copy replaced", 20*time.Second, func() bool {
		mu.Lock()
		replaced := false
		for _, r := range rounds {
			replaced = replaced || r.Replaced > 0
		}
		mu.Unlock()
		return replaced && last().Copies == 3
	})

	load.Store(false)
	testsvc.WaitUntil(t, "back to one copy after the window", 30*time.Second, func() bool { return last().Copies == 1 && last().Decision.Desired == 1 })
	// Through scale-out, a SIGKILL and drained scale-in, the balancer's
	// retries and the drain kept every request answered.
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed through the balancer", n)
	}
}

// copyPIDs are the idgen copies' process IDs, from their parent's view.
func copyPIDs(t *testing.T, dir string) []int {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "idgen serve --addr 127.0.0.1:[0-9]+ --data "+dir).Output()
	if err != nil {
		t.Fatalf("pgrep: %v", err)
	}
	var pids []int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var pid int
		if _, err := fmt.Sscan(sc.Text(), &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatal("no copy running")
	}
	return pids
}

// checkFleetView reads the admin port: the fleet's view lists serving
// copies with their processes, and the rounds; /readyz and /metrics agree.
func checkFleetView(t *testing.T, base string, serving int) {
	t.Helper()
	var snap Snapshot
	resp, err := http.Get(base + "/api/v1/fleet")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range snap.Copies {
		if c.State == "serving" {
			n++
			if c.PID <= 0 || !strings.HasPrefix(c.Addr, "127.0.0.1:") {
				t.Errorf("copy %+v: no process or address", c)
			}
		}
	}
	if n < serving || snap.Metric != MetricRPS || snap.Max != 3 || len(snap.Rounds) == 0 {
		t.Fatalf("fleet view: %d serving (want %d), %+v", n, serving, snap)
	}
	if last := snap.Rounds[len(snap.Rounds)-1]; last.Metric == nil || last.Desired < 1 {
		t.Fatalf("last round %+v", last)
	}
	resp, err = http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "scalelab_autoscale_copies ") || !strings.Contains(string(body), "scalelab_autoscale_scale_ups_total ") {
		t.Fatalf("/metrics lacks the autoscaler's series")
	}
}
