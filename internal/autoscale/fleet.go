package autoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// balancer is the load balancer's admin API, as the autoscaler uses it.
type balancer struct {
	admin, token string
	client       *http.Client
}

func (b *balancer) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(b.admin, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("autoscale: the balancer's admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("autoscale: %s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// inFlight is what the balancer counts in progress on each backend.
func (b *balancer) inFlight(ctx context.Context) (map[string]float64, error) {
	var list struct {
		Backends []struct {
			ID       string `json:"id"`
			InFlight int64  `json:"in_flight"`
		} `json:"backends"`
	}
	if err := b.do(ctx, http.MethodGet, "/admin/backends", nil, &list); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, x := range list.Backends {
		out[x.ID] = float64(x.InFlight)
	}
	return out, nil
}

// replica is one running copy of the backend.
type replica struct {
	port    int
	addr    string // host:port, also its ID at the balancer
	cmd     *exec.Cmd
	exited  chan struct{}
	started time.Time
	prev    *Sample
	log     *os.File
	state   string // starting, serving, draining (guarded by fleet.mu)
}

func (c *replica) alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// fleet starts and stops copies of the backend command.
type fleet struct {
	command []string // with {port} (and anything else) substituted per copy
	lb      *balancer
	logDir  string
	logger  *slog.Logger
	ready   time.Duration // how long a copy has to answer /readyz
	drain   time.Duration // how long a stopping copy's requests get

	mu     sync.Mutex
	copies []*replica // serving: registered with the balancer
	moving []*replica // starting or draining: the view shows them too
}

// setMoving adds c to the starting-or-draining list in state, or (state
// "") takes it off.
func (f *fleet) setMoving(c *replica, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.moving {
		if x == c {
			f.moving = append(f.moving[:i:i], f.moving[i+1:]...)
			break
		}
	}
	if state != "" {
		c.state = state
		f.moving = append(f.moving, c)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs one copy, waits for its /readyz, and registers it.
func (f *fleet) start(ctx context.Context) (*replica, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := make([]string, len(f.command))
	for i, a := range f.command {
		args[i] = strings.ReplaceAll(a, "{port}", strconv.Itoa(port))
	}
	c := &replica{port: port, addr: "127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{}), started: time.Now()}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = childAttr()
	if f.logDir != "" {
		if c.log, err = os.Create(fmt.Sprintf("%s/copy-%d.log", f.logDir, port)); err == nil {
			cmd.Stdout, cmd.Stderr = c.log, c.log
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("autoscale: start %v: %w", args, err)
	}
	c.cmd = cmd
	go func() { _ = cmd.Wait(); close(c.exited) }()
	f.setMoving(c, "starting")
	defer f.setMoving(c, "")
	deadline := time.Now().Add(f.ready)
	for {
		resp, err := http.Get("http://" + c.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if !c.alive() || time.Now().After(deadline) || ctx.Err() != nil {
			f.kill(c)
			return nil, fmt.Errorf("autoscale: copy on port %d did not become ready within %v", port, f.ready)
		}
		time.Sleep(50 * time.Millisecond) // a starting process has nothing to wait on but its port
	}
	if err := f.lb.do(ctx, http.MethodPost, "/admin/backends", map[string]any{"url": "http://" + c.addr, "weight": 1}, nil); err != nil {
		f.kill(c)
		return nil, err
	}
	f.mu.Lock()
	c.state = "serving"
	f.copies = append(f.copies, c)
	f.mu.Unlock()
	f.logger.Info("autoscale: copy up", "addr", c.addr, "copies", f.count())
	return c, nil
}

// stop drains a copy at the balancer, waits for its requests to finish
// (at most the drain time), removes it there, and stops it.
func (f *fleet) stop(ctx context.Context, c *replica) {
	f.forget(c)
	f.setMoving(c, "draining")
	defer f.setMoving(c, "")
	_ = f.lb.do(ctx, http.MethodPost, "/admin/backends/"+c.addr+"/drain", nil, nil)
	deadline := time.Now().Add(f.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		inFlight, err := f.lb.inFlight(ctx)
		if err != nil || inFlight[c.addr] == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = f.lb.do(ctx, http.MethodDelete, "/admin/backends/"+c.addr, nil, nil)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	if c.log != nil {
		c.log.Close()
	}
	f.logger.Info("autoscale: copy stopped", "addr", c.addr, "copies", f.count())
}

func (f *fleet) kill(c *replica) {
	_ = c.cmd.Process.Kill()
	<-c.exited
	if c.log != nil {
		c.log.Close()
	}
}

func (f *fleet) forget(c *replica) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.copies {
		if x == c {
			f.copies = append(f.copies[:i:i], f.copies[i+1:]...)
			return
		}
	}
}

// reap removes the copies that exited by themselves (crashed) from the
// fleet and from the balancer, and returns how many.
func (f *fleet) reap(ctx context.Context) int {
	f.mu.Lock()
	var dead []*replica
	for _, c := range f.copies {
		if !c.alive() {
			dead = append(dead, c)
		}
	}
	f.mu.Unlock()
	for _, c := range dead {
		f.forget(c)
		_ = f.lb.do(ctx, http.MethodDelete, "/admin/backends/"+c.addr, nil, nil)
		if c.log != nil {
			c.log.Close()
		}
		f.logger.Warn("autoscale: copy exited; it will be replaced", "addr", c.addr)
	}
	return len(dead)
}

func (f *fleet) list() []*replica {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*replica(nil), f.copies...)
}

func (f *fleet) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.copies)
}
