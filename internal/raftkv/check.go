package raftkv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/scalelab/scalelab/internal/platform/auth"
)

// CheckOptions shape `scalelab experiment run linearizability`.
type CheckOptions struct {
	Nodes    int
	Duration time.Duration
	Faults   []string // partition, kill, pause
	Clients  int
	Out      string
	Seed     uint64
	Binary   string // the scalelab binary to run nodes with (default: this one)
}

type checkRun struct {
	opts    CheckOptions
	bin     string
	dir     string
	addrs   []string // client addresses, index = id-1
	peers   []string
	mu      sync.Mutex
	procs   map[int]*exec.Cmd
	paused  map[int]bool
	start   time.Time
	ops     []porcupine.Operation
	faults  []string
	hclient *http.Client
	keyFile string
	peerc   *http.Client // to the peer ports, under the run's cluster key
	peersA  *auth.Peers
}

// RunCheck starts opts.Nodes real `scalelab raftkv node` processes, runs
// concurrent clients against them while injecting the faults, checks the
// recorded history with Porcupine and writes report.md and history.html
// into opts.Out. It returns whether the history is linearizable.
func RunCheck(ctx context.Context, w io.Writer, opts CheckOptions) (bool, error) {
	bin, err := opts.Binary, error(nil)
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return false, err
	}
	dir, err := os.MkdirTemp("", "raftkv-check-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	c := &checkRun{opts: opts, bin: bin, dir: dir, procs: map[int]*exec.Cmd{}, paused: map[int]bool{},
		hclient: &http.Client{Timeout: 2 * time.Second}}
	// The nodes run as a real cluster does: peers authenticated by a key.
	keyText := auth.NewKeyText()
	c.keyFile = filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(c.keyFile, []byte(keyText), 0o600); err != nil {
		return false, err
	}
	key, _ := auth.ParseKey(keyText)
	if c.peersA, err = auth.NewPeers(key, "raftkv-check"); err != nil {
		return false, err
	}
	c.peerc = &http.Client{Timeout: 2 * time.Second, Transport: c.peersA.Transport(&http.Transport{})}
	var peerList []string
	for i := 1; i <= opts.Nodes; i++ {
		a, p, err := twoPorts()
		if err != nil {
			return false, err
		}
		c.addrs, c.peers = append(c.addrs, a), append(c.peers, p)
		peerList = append(peerList, fmt.Sprintf("%d=%s", i, p))
	}
	for i := 1; i <= opts.Nodes; i++ {
		if err := c.startNode(i, strings.Join(peerList, ",")); err != nil {
			return false, err
		}
	}
	defer c.stopAll()
	fmt.Fprintf(w, "%d nodes on loopback, %d clients, %v, faults %v\n", opts.Nodes, opts.Clients, opts.Duration, opts.Faults)
	if !c.waitLeader(15 * time.Second) {
		return false, fmt.Errorf("raftkv check: no leader elected (logs in %s)", dir)
	}
	c.start = time.Now()
	stop := c.start.Add(opts.Duration)
	var wg sync.WaitGroup
	for cl := 1; cl <= opts.Clients; cl++ {
		wg.Add(1)
		go func(cl int) { defer wg.Done(); c.client(ctx, cl, stop, peerList) }(cl)
	}
	c.injectFaults(ctx, stop)
	wg.Wait()
	c.healAll(strings.Join(peerList, ","))

	res, info := porcupine.CheckOperationsVerbose(RegisterModel, c.ops, time.Minute)
	html := filepath.Join(opts.Out, "history.html")
	if err := porcupine.VisualizePath(RegisterModel, info, html); err != nil {
		fmt.Fprintf(w, "visualisation: %v\n", err)
	}
	verdict := map[porcupine.CheckResult]string{porcupine.Ok: "linearizable", porcupine.Illegal: "NOT linearizable",
		porcupine.Unknown: "unknown (the checker timed out)"}[res]
	counts := map[string]int{}
	unknown := 0
	for _, op := range c.ops {
		counts[[]string{"get", "put", "cas", "delete"}[op.Input.(CheckInput).Kind]]++
		if op.Output.(CheckOutput).Unknown {
			unknown++
		}
	}
	var rep bytes.Buffer
	fmt.Fprintf(&rep, "# raftkv linearizability check\n\n- nodes: %d (real processes, fsync on), clients: %d, duration: %v, seed: %d\n",
		opts.Nodes, opts.Clients, opts.Duration, opts.Seed)
	fmt.Fprintf(&rep, "- operations: %d (get %d, put %d, cas %d, delete %d); writes with unknown outcome: %d\n",
		len(c.ops), counts["get"], counts["put"], counts["cas"], counts["delete"], unknown)
	fmt.Fprintf(&rep, "- verdict: **%s** (Porcupine)\n- visualisation: history.html\n\n## Faults injected\n\n", verdict)
	for _, f := range c.faults {
		fmt.Fprintf(&rep, "- %s\n", f)
	}
	if err := os.WriteFile(filepath.Join(opts.Out, "report.md"), rep.Bytes(), 0o644); err != nil {
		return false, err
	}
	_, _ = w.Write(rep.Bytes())
	return res != porcupine.Illegal, nil
}

func twoPorts() (string, string, error) {
	var out []string
	for i := 0; i < 2; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		out = append(out, l.Addr().String())
		defer l.Close()
	}
	return out[0], out[1], nil
}

func (c *checkRun) startNode(i int, peers string) error {
	log, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprint("node", i, ".log")), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, "raftkv", "node", "--id", fmt.Sprint(i), "--addr", c.addrs[i-1], "--peer-addr", c.peers[i-1],
		"--peers", peers, "--data", filepath.Join(c.dir, fmt.Sprint(i)), "--tick", "50ms", "--request-timeout", "1s", "--fault-injection",
		"--cluster-key", c.keyFile)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[i] = cmd
	c.mu.Unlock()
	return nil
}

func (c *checkRun) waitLeader(limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := c.hclient.Get("http://" + c.addrs[0] + "/v1/cluster")
		if err != nil {
			continue
		}
		var info ClusterInfo
		_ = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if info.Leader != 0 {
			return true
		}
	}
	return false
}

func (c *checkRun) now() int64 { return int64(time.Since(c.start)) }

func (c *checkRun) record(cl int, in CheckInput, out CheckOutput, call, ret int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ops = append(c.ops, porcupine.Operation{ClientId: cl, Input: in, Output: out, Call: call, Return: ret})
}

// client runs operations on key "x" through random nodes until stop.
func (c *checkRun) client(ctx context.Context, cl int, stop time.Time, _ []string) {
	r := rand.New(rand.NewPCG(c.opts.Seed, uint64(cl)))
	var seq uint64
	lastRev := int64(0)
	for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
		in := CheckInput{Kind: OpKind(r.IntN(4)), Value: fmt.Sprintf("c%d-%d", cl, i)}
		node := c.addrs[r.IntN(len(c.addrs))]
		call := c.now()
		if in.Kind == OpGet {
			resp, err := c.hclient.Get("http://" + node + "/v1/kv/x")
			if err != nil {
				continue
			}
			var b getBody
			_ = json.NewDecoder(resp.Body).Decode(&b)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				v := ""
				if b.Value != nil {
					v = *b.Value
				}
				c.record(cl, in, CheckOutput{Found: true, Value: v, Revision: b.Revision}, call, c.now())
				lastRev = b.Revision
			case http.StatusNotFound:
				c.record(cl, in, CheckOutput{}, call, c.now())
			}
			continue
		}
		seq++
		method, path := http.MethodPut, "/v1/kv/x"
		switch in.Kind {
		case OpCAS:
			in.IfRevision = lastRev
			path += fmt.Sprintf("?if_revision=%d", lastRev)
		case OpDelete:
			method = http.MethodDelete
		}
		out, ret := CheckOutput{Unknown: true}, int64(math.MaxInt64)
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
			target := c.addrs[r.IntN(len(c.addrs))]
			body := []byte(in.Value)
			if method == http.MethodDelete {
				body = nil
			}
			req, _ := http.NewRequestWithContext(ctx, method, "http://"+target+path, bytes.NewReader(body))
			req.Header.Set("X-Client-ID", fmt.Sprint(cl))
			req.Header.Set("X-Request-Seq", fmt.Sprint(seq))
			resp, err := c.hclient.Do(req)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			var b conflictBody
			_ = json.NewDecoder(resp.Body).Decode(&b)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				out, ret = CheckOutput{Revision: b.Revision, Applied: true}, c.now()
				break
			}
			if resp.StatusCode == http.StatusPreconditionFailed {
				out, ret = CheckOutput{Current: b.Revision}, c.now()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.record(cl, in, out, call, ret)
	}
}

// injectFaults applies one fault at a time, each for about a second.
func (c *checkRun) injectFaults(ctx context.Context, stop time.Time) {
	r := rand.New(rand.NewPCG(c.opts.Seed, 999))
	peers := make([]string, len(c.peers))
	for i := range c.peers {
		peers[i] = fmt.Sprintf("%d=%s", i+1, c.peers[i])
	}
	for time.Now().Add(2*time.Second).Before(stop) && ctx.Err() == nil {
		time.Sleep(time.Duration(500+r.IntN(1000)) * time.Millisecond)
		victim := 1 + r.IntN(c.opts.Nodes)
		fault := c.opts.Faults[r.IntN(len(c.opts.Faults))]
		at := time.Since(c.start).Seconds()
		switch fault {
		case "partition":
			var others []uint64
			for i := 1; i <= c.opts.Nodes; i++ {
				if i != victim {
					others = append(others, uint64(i))
					c.cut(i, []uint64{uint64(victim)})
				}
			}
			c.cut(victim, others)
		case "kill":
			c.signal(victim, syscall.SIGKILL)
		case "pause":
			c.signal(victim, syscall.SIGSTOP)
		}
		time.Sleep(time.Duration(800+r.IntN(700)) * time.Millisecond)
		c.healAll(strings.Join(peers, ","))
		c.mu.Lock()
		c.faults = append(c.faults, fmt.Sprintf("%.1f s: %s node %d, healed at %.1f s", at, fault, victim, time.Since(c.start).Seconds()))
		c.mu.Unlock()
	}
}

func (c *checkRun) cut(node int, ids []uint64) {
	body, _ := json.Marshal(ids)
	req, _ := http.NewRequest(http.MethodPut, c.peersA.URL(c.peers[node-1], "/debug/cut"), bytes.NewReader(body))
	if resp, err := c.peerc.Do(req); err == nil {
		resp.Body.Close()
	}
}

func (c *checkRun) signal(node int, sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.procs[node]
	if p == nil {
		return
	}
	_ = p.Process.Signal(sig)
	switch sig {
	case syscall.SIGKILL:
		_ = p.Wait()
		delete(c.procs, node)
	case syscall.SIGSTOP:
		c.paused[node] = true
	}
}

// healAll resumes paused nodes, restarts killed ones and lifts partitions.
func (c *checkRun) healAll(peers string) {
	c.mu.Lock()
	var dead []int
	for i := 1; i <= c.opts.Nodes; i++ {
		if c.paused[i] {
			_ = c.procs[i].Process.Signal(syscall.SIGCONT)
			delete(c.paused, i)
		}
		if c.procs[i] == nil {
			dead = append(dead, i)
		}
	}
	c.mu.Unlock()
	for _, i := range dead {
		_ = c.startNode(i, peers)
	}
	for i := 1; i <= c.opts.Nodes; i++ {
		c.cut(i, []uint64{})
	}
}

func (c *checkRun) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.procs {
		if c.paused[i] {
			_ = p.Process.Signal(syscall.SIGCONT)
		}
		_ = p.Process.Signal(syscall.SIGKILL)
		_ = p.Wait()
	}
}
