package mapreduce

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The MIT 6.5840 lab 1 checks, on a cluster in this process: a
// coordinator and workers over a real broker (embedded NATS, and
// RabbitMQ), a local blob store and SQLite.

type engine struct {
	name string
	url  func(t *testing.T) string
}

var engines = []engine{
	{"EmbeddedNATS", func(*testing.T) string { return "" }},
	{"RabbitMQ", func(t *testing.T) string { return testsvc.AMQP(t) }},
}

type cluster struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	broker broker.Broker
	blob   blob.Store
	store  *store
	policy Policy
	met    *metrics
	log    *slog.Logger
	key    *auth.Key

	mu      sync.Mutex
	coord   *Coordinator
	stopC   context.CancelFunc
	coordWG sync.WaitGroup
	workers sync.WaitGroup
}

func newCluster(t *testing.T, brokerURL string, p Policy) *cluster {
	t.Helper()
	return newKeyedCluster(t, brokerURL, p, nil)
}

// newKeyedCluster is a cluster whose coordinator and workers seal every
// message with key.
func newKeyedCluster(t *testing.T, brokerURL string, p Policy, key *auth.Key) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ns := testsvc.Name("mrtest")
	dir := t.TempDir()
	b, err := broker.Open(ctx, brokerURL, broker.Options{Namespace: ns, DataDir: filepath.Join(dir, "nats"), GroupExpiry: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	testsvc.CleanupStreams(t, brokerURL, ns, heartbeatsTopic, controlTopic)
	bs, err := blob.NewLocal(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(ctx, testsvc.OpenDB(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	c := &cluster{t: t, ctx: ctx, dir: dir, broker: b, blob: bs, store: st, policy: p, met: newMetrics(nil), log: log, key: key}
	t.Cleanup(func() {
		cancel()
		c.stopCoordinator()
		c.workers.Wait()
		b.Close()
	})
	c.startCoordinator()
	return c
}

func (c *cluster) startCoordinator() {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, stop := context.WithCancel(c.ctx)
	c.coord = newCoordinator(c.store, c.broker, c.blob, c.policy, time.Now, c.log, c.met)
	c.coord.key = c.key
	c.stopC = stop
	failed := make(chan error, 1)
	c.coordWG.Add(1)
	go func(co *Coordinator) {
		defer c.coordWG.Done()
		failed <- co.Run(ctx)
	}(c.coord)
	select {
	case <-c.coord.Ready():
	case err := <-failed:
		c.t.Fatalf("coordinator: %v", err)
	}
}

// stopCoordinator is a coordinator crash: its memory is gone, its store
// stays.
func (c *cluster) stopCoordinator() {
	c.mu.Lock()
	stop := c.stopC
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	c.coordWG.Wait()
}

// startWorker runs a worker until the cluster ends; with restart, a
// worker that crashes is replaced by a new one (MIT's crash test loop).
func (c *cluster) startWorker(cfg WorkerConfig, restart bool) {
	c.startWorkerKeyed(cfg, restart, c.key)
}

// startWorkerKeyed is startWorker with a key of its own (a misconfigured
// worker: none, or another cluster's).
func (c *cluster) startWorkerKeyed(cfg WorkerConfig, restart bool, key *auth.Key) {
	c.workers.Add(1)
	go func() {
		defer c.workers.Done()
		for c.ctx.Err() == nil {
			w := newWorker(cfg, c.broker, c.blob, c.log, c.met)
			w.key = key
			cfg.ID = ""
			if err := w.Run(c.ctx); err != nil {
				c.t.Error(err)
				return
			}
			if !restart {
				return
			}
		}
	}()
}

func (c *cluster) submit(req SubmitRequest) string {
	c.t.Helper()
	c.mu.Lock()
	co := c.coord
	c.mu.Unlock()
	j, err := co.Submit(c.ctx, req)
	if err != nil {
		c.t.Fatal(err)
	}
	return j.Spec.ID
}

func (c *cluster) wait(id string, limit time.Duration) *JobRow {
	c.t.Helper()
	var j *JobRow
	testsvc.WaitUntil(c.t, "job "+id+" to end", limit, func() bool {
		var err error
		j, err = c.store.job(c.ctx, id)
		return err == nil && (j.State == JobDone || j.State == JobFailed)
	})
	return j
}

// output is the job's parts, concatenated in reducer order.
func (c *cluster) output(id string, reducers int) []byte {
	c.t.Helper()
	var all []byte
	for r := 0; r < reducers; r++ {
		obj, err := c.blob.Open(c.ctx, partKey(id, r))
		if err != nil {
			c.t.Fatal(err)
		}
		b, err := io.ReadAll(obj)
		obj.Close()
		if err != nil {
			c.t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func (c *cluster) attempts(id string) []AttemptRow {
	c.t.Helper()
	rows, err := c.store.attempts(c.ctx, id)
	if err != nil {
		c.t.Fatal(err)
	}
	return rows
}

// writeCorpus writes files like MIT's pg-*.txt inputs into a directory.
func writeCorpus(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bigCorpus is a corpus large enough for several splits of minSplit.
func bigCorpus(seed uint64, files, linesPerFile int) map[string][]byte {
	vocab := strings.Fields("the quick brown fox jumps over lazy dog map reduce shuffle sort merge worker master lease " +
		"straggler backup combiner partition Straße naïve données 日本語 zebra yak xylophone")
	out := map[string][]byte{}
	x := seed
	next := func(n int) int { x = x*6364136223846793005 + 1442695040888963407; return int((x >> 33) % uint64(n)) }
	for f := 0; f < files; f++ {
		var b bytes.Buffer
		for l := 0; l < linesPerFile; l++ {
			for w := next(12); w > 0; w-- {
				b.WriteString(vocab[next(len(vocab))])
				if next(30) == 0 {
					b.WriteString(", 1999-")
				}
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
		}
		out[fmt.Sprintf("pg-%d.txt", f)] = b.Bytes()
	}
	return out
}

// sortedLines is text's lines in order, as `sort` would compare them.
func sortedLines(text []byte) []string {
	s := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if len(text) == 0 {
		s = nil
	}
	slices.Sort(s)
	return s
}

func linesOf(ls []string) []byte {
	if len(ls) == 0 {
		return nil
	}
	return []byte(strings.Join(ls, "\n") + "\n")
}

// timingJob is MIT's mtiming/rtiming: each map and reduce takes a while,
// so that two running at once show as overlapping attempts.
type timingJob struct{}

func (timingJob) Map(rec Record, emit Emit) {
	time.Sleep(time.Millisecond)
	wordCount{}.Map(rec, emit)
}

func (timingJob) Reduce(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	time.Sleep(2 * time.Millisecond)
	wordCount{}.Reduce(key, values, emit)
}

func init() {
	Register(Definition{Name: "test-timing", Description: "word count with a pause per record and per key (tests)",
		New: func(Params) (Job, error) { return timingJob{}, nil }})
}

// overlapping says whether two attempts of kind ran at once on different
// workers.
func overlapping(rows []AttemptRow, kind string) bool {
	for i, a := range rows {
		for _, b := range rows[i+1:] {
			if a.Ref.Kind == kind && b.Ref.Kind == kind && a.Worker != b.Worker && a.State == AttemptDone && b.State == AttemptDone &&
				a.Started.Before(b.Finished) && b.Started.Before(a.Finished) {
				return true
			}
		}
	}
	return false
}

// executions counts, per task, the attempts workers started.
type executions struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *executions) fault(ref attemptRef) Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n = map[string]int{}
	}
	e.n[fmt.Sprintf("%s-%d", ref.Kind, ref.Index)]++
	return Fault{}
}

var testPolicy = Policy{Lease: time.Second, MaxFailures: 6, BackupTail: 0.1, BackupFactor: 0, BackupMin: time.Second}

func fastWorker() WorkerConfig {
	return WorkerConfig{Slots: 1, Heartbeat: 100 * time.Millisecond}
}

func forEngine(t *testing.T, fn func(t *testing.T, url string)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { fn(t, e.url(t)) })
	}
}
