package proctest

import (
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a `scalelab` subcommand run by a test as its own OS process,
// on a fixed address, so it can be killed with SIGKILL and started again
// exactly as it was (same flags, same address, same data).
type Process struct {
	Addr string
	t    testing.TB
	args []string
	cmd  *exec.Cmd
}

// Start runs the binary with args plus `--addr addr` and waits until its
// /readyz answers 200. The process is killed when the test ends.
func Start(t testing.TB, addr string, args ...string) *Process {
	t.Helper()
	p := &Process{Addr: addr, t: t, args: append(append([]string(nil), args...), "--addr", addr)}
	p.Restart()
	t.Cleanup(p.Kill)
	return p
}

// URL is the process's base URL.
func (p *Process) URL() string { return "http://" + p.Addr }

// Restart starts the process again (after Kill) and waits until it is ready.
func (p *Process) Restart() {
	p.t.Helper()
	p.cmd = exec.Command(Binary(p.t), p.args...)
	if testing.Verbose() {
		p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("proctest: %v not ready at %s after 30s", p.args, p.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL — no graceful shutdown, no deferred work — and reaps
// the process. Killing a process that is not running does nothing.
func (p *Process) Kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}
