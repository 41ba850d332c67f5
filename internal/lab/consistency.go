package lab

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/dynamo"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/raftkv"
)

// The consistency experiment puts a price on consistency: one replica is
// slow, a client writes a counter and at once reads it back through
// another node, and each setting reports its latency beside how often the
// read missed the write it followed — dynamo's R/W from 1/1 to 3/3, and
// raftkv's stale against linearizable reads.

// ConsistencyOptions shape one run.
type ConsistencyOptions struct {
	Ops  int           // write-then-read pairs per setting
	Slow time.Duration // extra delay of every message to or from the slow replica
}

type consistencyRun struct {
	Store, Setting string
	Ops, Stale     int
	WriteP50MS     float64
	WriteP99MS     float64
	ReadP50MS      float64
	ReadP99MS      float64
}

func consistencyExperiment() Experiment {
	return Experiment{
		Name: "consistency", System: "dynamo+raftkv",
		Summary: "One slow replica; write, then read at once through another node: latency against stale reads for dynamo's R/W from 1/1 to 3/3 and raftkv's stale vs linearizable reads",
		Quick:   map[string]string{"ops": "150"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := ConsistencyOptions{Ops: 1000, Slow: 20 * time.Millisecond}
			fs.IntVar(&opts.Ops, "ops", opts.Ops, "write-then-read pairs per setting")
			fs.DurationVar(&opts.Slow, "slow", opts.Slow, "extra delay of the slow replica's messages")
			return func(ctx context.Context, env Env) (*Report, error) {
				if opts.Ops < 10 || opts.Slow < 0 || opts.Slow > 5*time.Second {
					return nil, apperr.Usagef("want --ops ≥ 10 and 0 ≤ --slow ≤ 5s")
				}
				return runConsistency(ctx, env, opts)
			}
		},
	}
}

func runConsistency(ctx context.Context, env Env, opts ConsistencyOptions) (*Report, error) {
	var runs []consistencyRun
	for _, rw := range [][2]int{{1, 1}, {1, 2}, {2, 1}, {2, 2}, {1, 3}, {3, 1}, {3, 3}} {
		run, err := dynamoConsistency(ctx, env.Dir, opts, rw[0], rw[1])
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
		printConsistency(env.Log, run)
	}
	for _, stale := range []bool{true, false} {
		run, err := raftConsistency(ctx, env.Dir, opts, stale)
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
		printConsistency(env.Log, run)
	}
	r := consistencyReport(opts, runs)
	r.Plots = consistencyPlots(runs)
	var b strings.Builder
	fmt.Fprintf(&b, "# The price of consistency (one replica %v slower)\n\n| store | setting | stale reads | write p50 / p99 ms | read p50 / p99 ms |\n|---|---|---|---|---|\n", opts.Slow)
	for _, run := range runs {
		fmt.Fprintf(&b, "| %s | %s | %d of %d | %.2f / %.2f | %.2f / %.2f |\n", run.Store, run.Setting, run.Stale, run.Ops, run.WriteP50MS, run.WriteP99MS, run.ReadP50MS, run.ReadP99MS)
	}
	b.WriteString("\n" + lessonMarkdown(r))
	r.Body = b.String()
	return r, nil
}

func printConsistency(w io.Writer, run consistencyRun) {
	fmt.Fprintf(w, "%-7s %-22s stale %4d of %4d   write p50 %6.2f p99 %6.2f ms   read p50 %6.2f p99 %6.2f ms\n",
		run.Store, run.Setting, run.Stale, run.Ops, run.WriteP50MS, run.WriteP99MS, run.ReadP50MS, run.ReadP99MS)
}

// dynamoConsistency: three nodes, n3 slow; write through n1 at W, read
// through n2 at R.
func dynamoConsistency(ctx context.Context, dir string, opts ConsistencyOptions, r, w int) (consistencyRun, error) {
	tmp, err := os.MkdirTemp(dir, "dynamo-consistency-")
	if err != nil {
		return consistencyRun{}, err
	}
	defer os.RemoveAll(tmp)
	names := []string{"n1", "n2", "n3"}
	net, members := dynamo.NewNetwork(1), dynamo.NewStatic(names...)
	nodes := map[string]*dynamo.Node{}
	for _, name := range names {
		cfg := dynamo.DefaultConfig()
		cfg.ID, cfg.DataDir, cfg.Logger, cfg.Registry = name, filepath.Join(tmp, name), slog.New(slog.DiscardHandler), prometheus.NewRegistry()
		cfg.HintInterval, cfg.SyncInterval = time.Hour, time.Hour
		n, err := dynamo.Open(cfg, members, net.Transport(name))
		if err != nil {
			return consistencyRun{}, err
		}
		defer n.Close()
		net.Attach(name, n.Handle)
		nodes[name] = n
	}
	net.Slow("n3", opts.Slow)
	run := consistencyRun{Store: "dynamo", Setting: fmt.Sprintf("R=%d W=%d", r, w)}
	wh, rh := loadgen.NewHistogram(), loadgen.NewHistogram()
	for i := 1; i <= opts.Ops && ctx.Err() == nil; i++ {
		key := []byte(fmt.Sprint("k", i%10))
		t0 := time.Now()
		vs, err := nodes["n1"].Get(ctx, key, 1) // the writer's own context: it replaces what it wrote
		var clock vclock.Clock
		if err == nil {
			clock = vclock.Context(vs)
		}
		if _, err := nodes["n1"].Put(ctx, key, dynamo.WriteRequest{Context: clock, Value: []byte(strconv.Itoa(i)), W: w}); err != nil {
			return consistencyRun{}, fmt.Errorf("consistency: put at W=%d: %w", w, err)
		}
		_ = wh.RecordValue(max(1, time.Since(t0).Microseconds()))
		t1 := time.Now()
		got, err := nodes["n2"].Get(ctx, key, r)
		_ = rh.RecordValue(max(1, time.Since(t1).Microseconds()))
		run.Ops++
		if err != nil || !holds(got, i) {
			run.Stale++
		}
	}
	fill := func(h interface{ ValueAtQuantile(float64) int64 }) (float64, float64) {
		return float64(h.ValueAtQuantile(50)) / 1000, float64(h.ValueAtQuantile(99)) / 1000
	}
	run.WriteP50MS, run.WriteP99MS = fill(wh)
	run.ReadP50MS, run.ReadP99MS = fill(rh)
	return run, ctx.Err()
}

// holds reports whether a read returned the value written (or a later one).
func holds(vs []vclock.Version, want int) bool {
	for _, v := range vs {
		if n, err := strconv.Atoi(string(v.Value)); err == nil && n >= want {
			return true
		}
	}
	return false
}

// raftConsistency: three nodes, node 3 slow; write through the leader,
// read through node 3, stale or linearizable.
func raftConsistency(ctx context.Context, dir string, opts ConsistencyOptions, stale bool) (consistencyRun, error) {
	tmp, err := os.MkdirTemp(dir, "raftkv-consistency-")
	if err != nil {
		return consistencyRun{}, err
	}
	defer os.RemoveAll(tmp)
	c, err := raftkv.NewLocalCluster(tmp, 3, &host.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return consistencyRun{}, err
	}
	defer c.Close(context.Background())
	var leader uint64
	for deadline := time.Now().Add(10 * time.Second); leader == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, n := range c.State() {
			if n.Role == "leader" {
				leader = n.ID
			}
		}
	}
	if leader == 0 {
		return consistencyRun{}, fmt.Errorf("consistency: raftkv elected no leader")
	}
	reader := uint64(3)
	if leader == 3 {
		reader = 2
	}
	if err := c.SlowNode(reader, opts.Slow); err != nil {
		return consistencyRun{}, err
	}
	h := c.Handler()
	do := func(method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	setting := "linearizable reads"
	if stale {
		setting = "stale reads (?stale=true)"
	}
	run := consistencyRun{Store: "raftkv", Setting: setting}
	wh, rh := loadgen.NewHistogram(), loadgen.NewHistogram()
	for i := 1; i <= opts.Ops && ctx.Err() == nil; i++ {
		key := fmt.Sprint("k", i%10)
		t0 := time.Now()
		if code, body := do("PUT", fmt.Sprintf("/%d/v1/kv/%s", leader, key), strconv.Itoa(i)); code != http.StatusOK {
			return consistencyRun{}, fmt.Errorf("consistency: raftkv put: %d %s", code, body)
		}
		_ = wh.RecordValue(max(1, time.Since(t0).Microseconds()))
		path := fmt.Sprintf("/%d/v1/kv/%s", reader, key)
		if stale {
			path += "?stale=true"
		}
		t1 := time.Now()
		code, body := do("GET", path, "")
		_ = rh.RecordValue(max(1, time.Since(t1).Microseconds()))
		run.Ops++
		if code != http.StatusOK || !strings.Contains(body, `"value":"`+strconv.Itoa(i)+`"`) {
			run.Stale++
		}
	}
	run.WriteP50MS, run.WriteP99MS = float64(wh.ValueAtQuantile(50))/1000, float64(wh.ValueAtQuantile(99))/1000
	run.ReadP50MS, run.ReadP99MS = float64(rh.ValueAtQuantile(50))/1000, float64(rh.ValueAtQuantile(99))/1000
	return run, ctx.Err()
}

// consistencyReport states the lesson from the figures.
func consistencyReport(opts ConsistencyOptions, runs []consistencyRun) *Report {
	r := &Report{Experiment: "consistency", System: "dynamo+raftkv", Passed: true, Figures: map[string]float64{}}
	by := map[string]consistencyRun{}
	for _, run := range runs {
		key := strings.NewReplacer(" ", "_", "=", "", "(", "", ")", "", "?", "", ".", "").Replace(run.Store + "_" + run.Setting)
		r.Figures[key+"_stale"] = float64(run.Stale)
		r.Figures[key+"_read_p99_ms"], r.Figures[key+"_write_p99_ms"] = run.ReadP99MS, run.WriteP99MS
		by[run.Store+" "+run.Setting] = run
	}
	weak, strong := by["dynamo R=1 W=1"], by["dynamo R=2 W=2"]
	if weak.Ops > 0 && strong.Ops > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Dynamo with R+W ≤ N (R=1 W=1) answered fastest — write p50 %.2f ms, read p50 %.2f ms — and %d of %d reads right after a write missed it: the read reached a replica the write had not.",
			weak.WriteP50MS, weak.ReadP50MS, weak.Stale, weak.Ops))
		r.Lesson = append(r.Lesson, fmt.Sprintf("With R+W > N (R=2 W=2) every read set overlaps every write set: %d of %d reads were stale, at write p50 %.2f ms and read p50 %.2f ms.",
			strong.Stale, strong.Ops, strong.WriteP50MS, strong.ReadP50MS))
		if strong.Stale > 0 {
			r.Passed = false
			r.Lesson = append(r.Lesson, "A quorum read missed a quorum write: that contradicts R+W > N.")
		}
	}
	if all := by["dynamo R=3 W=3"]; all.Ops > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Asking every replica (R=3 W=3) waits for the slow one (%v slower) on every operation: write p99 %.2f ms, read p99 %.2f ms.",
			opts.Slow, all.WriteP99MS, all.ReadP99MS))
	}
	st, lin := by["raftkv stale reads (?stale=true)"], by["raftkv linearizable reads"]
	if st.Ops > 0 && lin.Ops > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("raftkv, reading through the slow follower: stale reads answered at p50 %.2f ms and missed the write just acknowledged %d of %d times; linearizable reads (ReadIndex: the leader confirms it still leads) at p50 %.2f ms, p99 %.2f ms, missed it %d times.",
			st.ReadP50MS, st.Stale, st.Ops, lin.ReadP50MS, lin.ReadP99MS, lin.Stale))
		if lin.Stale > 0 {
			r.Passed = false
			r.Lesson = append(r.Lesson, "A linearizable read missed an acknowledged write: that contradicts linearizability.")
		}
	}
	return r
}
