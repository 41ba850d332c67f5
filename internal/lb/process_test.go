package lb

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// Real backend processes (scalelab idgen serve) behind the balancer under
// steady GETs: one is killed with SIGKILL and started again on the same
// port. No GET fails (the balancer retries the ones the dead process
// dropped), the dead one is ejected or taken down, and it gets traffic
// again once it is back.
func TestBackendKilledAndRestartedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	bin := proctest.Binary(t)
	dir := t.TempDir()
	addrs := []string{proctest.FreeAddr(t), proctest.FreeAddr(t), proctest.FreeAddr(t)}
	procs := make([]*exec.Cmd, len(addrs))
	start := func(i int) {
		cmd := exec.Command(bin, "idgen", "serve", "--addr", addrs[i], "--data", filepath.Join(dir, addrs[i]))
		logf, _ := os.Create(filepath.Join(dir, addrs[i]+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
		testsvc.WaitUntil(t, addrs[i]+" ready", 20*time.Second, func() bool {
			resp, err := http.Get("http://" + addrs[i] + "/readyz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == 200
		})
	}
	for i := range addrs {
		start(i)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			if p != nil {
				_ = p.Process.Kill()
				_ = p.Wait()
			}
		}
	})
	cfg := fastConfig()
	cfg.SlowStart.Window = time.Second
	var backends []string
	for _, a := range addrs {
		backends = append(backends, "http://"+a)
	}
	lb := startLB(t, cfg, DefaultProxyConfig(), backends...)

	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := http.Get(lb.url + "/api/v1/ids")
				sent.Add(1)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	victim := addrs[1]
	state := func() string {
		for _, b := range lb.Pool.List() {
			if b.ID == victim {
				return b.State
			}
		}
		return ""
	}
	requestsTo := func() uint64 {
		for _, b := range lb.Pool.List() {
			if b.ID == victim {
				return b.Requests
			}
		}
		return 0
	}
	testsvc.WaitUntil(t, "load on every backend", 10*time.Second, func() bool { return requestsTo() > 50 })
	_ = procs[1].Process.Signal(syscall.SIGKILL)
	_ = procs[1].Wait()
	procs[1] = nil
	testsvc.WaitUntil(t, "the killed backend out of rotation", 5*time.Second, func() bool { s := state(); return s == "down" || s == "ejected" })
	start(1)
	before := requestsTo()
	testsvc.WaitUntil(t, "the restarted backend back in rotation", 40*time.Second, func() bool { return state() == "up" && requestsTo() > before+50 })
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d GETs failed through a backend's kill and restart", failed.Load(), sent.Load())
	}
}
