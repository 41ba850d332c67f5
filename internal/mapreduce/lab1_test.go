package mapreduce

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// wcTest: the word count's output equals the sequential run's, and with
// no failure every map and reduce task ran exactly once — counted both by
// the coordinator (attempts) and by the workers (executions).
// indexerTest: the same for the inverted index.
func TestLab1WordCountAndIndexer(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		files := bigCorpus(1, 8, 400)
		dir := writeCorpus(t, files)
		c := newCluster(t, url, testPolicy)
		var ex executions
		for range 3 {
			cfg := fastWorker()
			cfg.Fault = ex.fault
			c.startWorker(cfg, false)
		}
		for _, name := range []string{"wordcount", "invertedindex"} {
			ex.mu.Lock()
			ex.n = nil
			ex.mu.Unlock()
			def, _ := Lookup(name)
			job, _ := def.New(nil)
			want := linesOf(sortedLines(linesOf(sequential(t, job, files))))
			id := c.submit(SubmitRequest{Job: name, Input: dir, Reducers: 5, SplitSize: minSplit})
			j := c.wait(id, time.Minute)
			if j.State != JobDone {
				t.Fatalf("%s: job %s", name, j.State)
			}
			got := linesOf(sortedLines(c.output(id, 5)))
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: output differs from the sequential run's (%d vs %d bytes)", name, len(got), len(want))
			}
			rows := c.attempts(id)
			maps := len(j.Spec.Splits)
			if maps < 8 {
				t.Fatalf("%s: %d map tasks; the corpus should make more", name, maps)
			}
			if len(rows) != maps+5 {
				t.Fatalf("%s: %d attempts for %d map and 5 reduce tasks", name, len(rows), maps)
			}
			ex.mu.Lock()
			for task, n := range ex.n {
				if n != 1 {
					t.Errorf("%s: task %s executed %d times", name, task, n)
				}
			}
			if len(ex.n) != maps+5 {
				t.Errorf("%s: workers executed %d tasks, want %d", name, len(ex.n), maps+5)
			}
			ex.mu.Unlock()
		}
	})
}

// mapParallelismTest and reduceParallelismTest: two workers run map tasks
// at once, and reduce tasks at once.
func TestLab1Parallelism(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		dir := writeCorpus(t, bigCorpus(2, 4, 300))
		c := newCluster(t, url, testPolicy)
		c.startWorker(fastWorker(), false)
		c.startWorker(fastWorker(), false)
		id := c.submit(SubmitRequest{Job: "test-timing", Input: dir, Reducers: 4, SplitSize: minSplit})
		if j := c.wait(id, time.Minute); j.State != JobDone {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		rows := c.attempts(id)
		if !overlapping(rows, "map") {
			t.Error("no two map tasks ran at once on two workers")
		}
		if !overlapping(rows, "reduce") {
			t.Error("no two reduce tasks ran at once on two workers")
		}
	})
}

// jobCountTest/earlyExitTest: the job is done only when all of its output
// is there — at the moment the coordinator says done, every part exists
// and reads whole.
func TestLab1NoEarlyDone(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		files := bigCorpus(3, 3, 300)
		dir := writeCorpus(t, files)
		c := newCluster(t, url, testPolicy)
		c.startWorker(fastWorker(), false)
		c.startWorker(fastWorker(), false)
		id := c.submit(SubmitRequest{Job: "test-timing", Input: dir, Reducers: 3, SplitSize: minSplit})
		var out []byte
		for {
			j, err := c.store.job(c.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if j.State == JobDone {
				out = c.output(id, 3) // fails the test if a part is missing
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		want := linesOf(sortedLines(linesOf(sequential(t, timingJob{}, files))))
		if got := linesOf(sortedLines(out)); !bytes.Equal(got, want) {
			t.Fatal("the output read at 'done' differs from the sequential run's")
		}
	})
}

// crashTest: workers crash and stall at random and are restarted in a
// loop; the output is still exactly the sequential run's.
func TestLab1CrashingWorkers(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		files := bigCorpus(4, 6, 300)
		dir := writeCorpus(t, files)
		c := newCluster(t, url, Policy{Lease: 500 * time.Millisecond, MaxFailures: 50})
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(42, 4))
		var crashes, stalls int
		fault := func(ref attemptRef) Fault {
			mu.Lock()
			defer mu.Unlock()
			switch x := rng.IntN(10); {
			case x < 3:
				crashes++
				return Fault{Crash: true}
			case x < 4:
				stalls++
				return Fault{Stall: 1500 * time.Millisecond}
			}
			return Fault{}
		}
		for range 3 {
			cfg := fastWorker()
			cfg.Fault = fault
			c.startWorker(cfg, true)
		}
		for _, name := range []string{"wordcount", "invertedindex"} {
			def, _ := Lookup(name)
			job, _ := def.New(nil)
			want := linesOf(sortedLines(linesOf(sequential(t, job, files))))
			id := c.submit(SubmitRequest{Job: name, Input: dir, Reducers: 3, SplitSize: minSplit})
			if j := c.wait(id, 2*time.Minute); j.State != JobDone {
				t.Fatalf("%s: job %s: %s", name, j.State, j.Error)
			}
			if got := linesOf(sortedLines(c.output(id, 3))); !bytes.Equal(got, want) {
				t.Fatalf("%s: output with crashing workers differs from the sequential run's", name)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if crashes == 0 || stalls == 0 {
			t.Fatalf("%d crashes and %d stalls: the test injected too few faults", crashes, stalls)
		}
		t.Logf("%d crashes, %d stalls", crashes, stalls)
	})
}

// The coordinator is killed mid-job (its memory lost, its store kept) and
// started again: the job completes with the same output, and no map task
// finished before the crash runs again.
func TestCoordinatorRestartMidJob(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		files := bigCorpus(5, 6, 300)
		dir := writeCorpus(t, files)
		c := newCluster(t, url, testPolicy)
		c.startWorker(fastWorker(), false)
		c.startWorker(fastWorker(), false)
		id := c.submit(SubmitRequest{Job: "test-timing", Input: dir, Reducers: 3, SplitSize: minSplit})
		var doneBefore map[int]bool
		testsvc.WaitUntil(t, "two map tasks done", time.Minute, func() bool {
			doneBefore = map[int]bool{}
			for _, r := range c.attempts(id) {
				if r.Ref.Kind == "map" && r.State == AttemptDone {
					doneBefore[r.Ref.Index] = true
				}
			}
			return len(doneBefore) >= 2
		})
		c.stopCoordinator()
		time.Sleep(300 * time.Millisecond) // workers report into the broker meanwhile
		c.startCoordinator()
		if j := c.wait(id, time.Minute); j.State != JobDone {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		want := linesOf(sortedLines(linesOf(sequential(t, timingJob{}, files))))
		if got := linesOf(sortedLines(c.output(id, 3))); !bytes.Equal(got, want) {
			t.Fatal("output after a coordinator restart differs from the sequential run's")
		}
		for _, r := range c.attempts(id) {
			if r.Ref.Kind == "map" && doneBefore[r.Ref.Index] && r.Ref.Attempt > 1 {
				t.Errorf("map %d, done before the restart, ran again (attempt %d)", r.Ref.Index, r.Ref.Attempt)
			}
		}
	})
}

// A task message delivered twice (a broker redelivery, a coordinator
// that republished) runs the attempt at most once to a result: the copy
// is cancelled or late, and the output is unchanged.
func TestRedeliveredTaskMessage(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		files := bigCorpus(6, 4, 200)
		dir := writeCorpus(t, files)
		c := newCluster(t, url, testPolicy)
		var once sync.Once
		cfg := fastWorker()
		cfg.Fault = func(ref attemptRef) Fault {
			if ref.Kind == "map" && ref.Index == 0 {
				once.Do(func() { // the broker hands the same message to another worker
					raw := fmt.Sprintf(`{"job":%q,"kind":"map","index":0,"attempt":%d}`, ref.Job, ref.Attempt)
					if err := c.broker.Publish(c.ctx, tasksTopic, []byte(raw)); err != nil {
						t.Error(err)
					}
				})
			}
			return Fault{}
		}
		c.startWorker(cfg, false)
		c.startWorker(cfg, false)
		id := c.submit(SubmitRequest{Job: "wordcount", Input: dir, Reducers: 2, SplitSize: minSplit})
		if j := c.wait(id, time.Minute); j.State != JobDone {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		want := linesOf(sortedLines(linesOf(sequential(t, wordCount{}, files))))
		if got := linesOf(sortedLines(c.output(id, 2))); !bytes.Equal(got, want) {
			t.Fatal("output differs after a duplicated task message")
		}
		for _, r := range c.attempts(id) {
			if r.Ref.Kind == "map" && r.Ref.Index == 0 && r.Ref.Attempt != 1 {
				t.Errorf("the duplicate became attempt %d", r.Ref.Attempt)
			}
		}
	})
}

// A map output that disappears from the store before the reducers read
// it is found missing by a reducer; the coordinator runs that map task
// again, and the job's output is unchanged.
func TestLostMapOutputIsReexecuted(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		files := bigCorpus(7, 4, 200)
		dir := writeCorpus(t, files)
		c := newCluster(t, url, testPolicy)
		var once sync.Once
		cfg := fastWorker()
		cfg.Fault = func(ref attemptRef) Fault {
			if ref.Kind == "reduce" {
				once.Do(func() {
					if err := c.blob.Delete(c.ctx, mapOutputKey(ref.Job, 1, 1)); err != nil {
						t.Error(err)
					}
				})
			}
			return Fault{}
		}
		c.startWorker(cfg, false)
		c.startWorker(cfg, false)
		id := c.submit(SubmitRequest{Job: "wordcount", Input: dir, Reducers: 3, SplitSize: minSplit})
		if j := c.wait(id, time.Minute); j.State != JobDone {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		want := linesOf(sortedLines(linesOf(sequential(t, wordCount{}, files))))
		if got := linesOf(sortedLines(c.output(id, 3))); !bytes.Equal(got, want) {
			t.Fatal("output differs after a lost map output")
		}
		reran := false
		for _, r := range c.attempts(id) {
			if r.Ref.Kind == "map" && r.Ref.Index == 1 && r.Ref.Attempt == 2 && r.State == AttemptDone {
				reran = true
			}
		}
		if !reran {
			t.Fatalf("map 1 was not run again: %+v", c.attempts(id))
		}
	})
}

// A straggler — one map task on a worker that takes 20 s longer over it —
// gets a backup attempt on another worker near the end of the phase; the
// backup finishes first and the straggler is cancelled.
func TestBackupTaskBeatsStraggler(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		files := bigCorpus(8, 10, 100)
		dir := writeCorpus(t, files)
		p := testPolicy
		p.BackupFactor, p.BackupTail, p.BackupMin = 1.5, 0.2, 300*time.Millisecond
		c := newCluster(t, url, p)
		cfg := fastWorker()
		cfg.Fault = func(ref attemptRef) Fault {
			if ref.Kind == "map" && ref.Index == 3 && ref.Attempt == 1 {
				return Fault{Slow: 20 * time.Second}
			}
			return Fault{}
		}
		for range 3 {
			c.startWorker(cfg, false)
		}
		id := c.submit(SubmitRequest{Job: "wordcount", Input: dir, Reducers: 2, SplitSize: minSplit})
		if j := c.wait(id, time.Minute); j.State != JobDone {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		var straggler, backup *AttemptRow
		rows := c.attempts(id)
		for i, r := range rows {
			if r.Ref.Kind == "map" && r.Ref.Index == 3 {
				if r.Ref.Attempt == 1 {
					straggler = &rows[i]
				} else if r.Backup {
					backup = &rows[i]
				}
			}
		}
		if backup == nil || backup.State != AttemptDone || straggler.State != AttemptCancelled {
			t.Fatalf("straggler %+v, backup %+v: want the backup done and the straggler cancelled", straggler, backup)
		}
		want := linesOf(sortedLines(linesOf(sequential(t, wordCount{}, files))))
		if got := linesOf(sortedLines(c.output(id, 2))); !bytes.Equal(got, want) {
			t.Fatal("output differs with a backup task")
		}
	})
}

// Bad input: empty files give an empty output, binary data is counted as
// the sequential run counts it, and a 1 GiB line fails the job with an
// error that says so instead of exhausting memory.
func TestBadInput(t *testing.T) {
	c := newCluster(t, "", Policy{Lease: time.Second, MaxFailures: 2})
	c.startWorker(fastWorker(), false)

	empty := writeCorpus(t, map[string][]byte{"a.txt": nil, "b.txt": nil})
	id := c.submit(SubmitRequest{Job: "wordcount", Input: empty, Reducers: 2})
	if j := c.wait(id, time.Minute); j.State != JobDone || len(j.Spec.Splits) != 0 {
		t.Fatalf("empty input: job %s with %d splits", j.State, len(j.Spec.Splits))
	}
	if out := c.output(id, 2); len(out) != 0 {
		t.Fatalf("empty input gave %q", out)
	}

	bin := make([]byte, 200_000)
	brng := rand.New(rand.NewPCG(1, 1))
	for i := range bin {
		bin[i] = byte(brng.Uint32())
	}
	files := map[string][]byte{"blob.bin": bin}
	id = c.submit(SubmitRequest{Job: "wordcount", Input: writeCorpus(t, files), Reducers: 3, SplitSize: minSplit})
	if j := c.wait(id, time.Minute); j.State != JobDone {
		t.Fatalf("binary input: job %s: %s", j.State, j.Error)
	}
	if got, want := linesOf(sortedLines(c.output(id, 3))), linesOf(sortedLines(linesOf(sequential(t, wordCount{}, files)))); !bytes.Equal(got, want) {
		t.Fatal("binary input: output differs from the sequential run's")
	}

	huge := filepath.Join(t.TempDir(), "one-line.txt")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil { // sparse: 1 GiB of zero bytes and no newline
		t.Fatal(err)
	}
	f.Close()
	id = c.submit(SubmitRequest{Job: "wordcount", Input: huge, Reducers: 1, SplitSize: 2 << 30, MaxRecord: 16 << 20})
	j := c.wait(id, time.Minute)
	if j.State != JobFailed || !strings.Contains(j.Error, "record too long") {
		t.Fatalf("a 1 GiB line: job %s, error %q; want failed, record too long", j.State, j.Error)
	}

	for _, bad := range []SubmitRequest{
		{Job: "nosuch", Input: empty, Reducers: 1},
		{Job: "wordcount", Input: empty, Reducers: 0},
		{Job: "wordcount", Input: "/does/not/exist", Reducers: 1},
		{Job: "grep", Input: empty, Reducers: 1, Params: Params{"pattern": "("}},
		{Job: "wordcount", Input: empty, Reducers: 1, SplitSize: 10},
	} {
		if _, err := c.coord.Submit(c.ctx, bad); err == nil {
			t.Errorf("submit %+v: accepted", bad)
		}
	}
}

// With a cluster key, nothing without the key's tag reaches the
// coordinator's state or a worker: forged events, task messages and
// heartbeats are dropped and counted. And even a correctly sealed "done"
// whose output is not in the blob store finishes nothing: the coordinator
// checks the store. The job's output is the sequential run's.
func TestForgedMessagesAreDropped(t *testing.T) {
	forEngine(t, func(t *testing.T, url string) {
		key, err := auth.ParseKey(auth.NewKeyText())
		if err != nil {
			t.Fatal(err)
		}
		other, _ := auth.ParseKey(auth.NewKeyText())
		files := bigCorpus(9, 4, 300)
		dir := writeCorpus(t, files)
		c := newKeyedCluster(t, url, testPolicy, key)
		c.startWorker(fastWorker(), false)
		c.startWorker(fastWorker(), false)
		// A worker without the key takes task messages it cannot verify:
		// it must give them back, not drain the queue.
		var keylessRan atomic.Int32
		lost := fastWorker()
		var jobID atomic.Value
		lost.Fault = func(ref attemptRef) Fault {
			if id, _ := jobID.Load().(string); ref.Job == id && ref.Attempt < 7 { // not the forged, unsealed task below
				keylessRan.Add(1)
			}
			return Fault{}
		}
		c.startWorkerKeyed(lost, false, nil)
		id := c.submit(SubmitRequest{Job: "wordcount", Input: dir, Reducers: 2, SplitSize: minSplit})
		jobID.Store(id)
		forge := func(topic string, v any, k *auth.Key) {
			if err := c.broker.Publish(c.ctx, topic, encode(k, v)); err != nil {
				t.Fatal(err)
			}
		}
		done := event{attemptRef: attemptRef{Job: id, Kind: "map", Index: 0, Attempt: 1}, Type: eventDone, Worker: "mallory", LostMap: -1}
		forge(eventsTopic, done, nil)   // no tag
		forge(eventsTopic, done, other) // another cluster's key
		forge(tasksTopic, taskMessage{attemptRef: attemptRef{Job: id, Kind: "map", Index: 0, Attempt: 7}}, nil)
		forge(heartbeatsTopic, heartbeat{Worker: "mallory", Running: []attemptRef{done.attemptRef}}, other)
		// Sealed with the real key but with nothing in the store behind it:
		forge(eventsTopic, event{attemptRef: attemptRef{Job: id, Kind: "map", Index: 1, Attempt: 1}, Type: eventDone, Worker: "mallory", Bytes: 12, LostMap: -1}, key)
		if j := c.wait(id, time.Minute); j.State != JobDone {
			t.Fatalf("job %s: %s", j.State, j.Error)
		}
		want := linesOf(sortedLines(linesOf(sequential(t, wordCount{}, files))))
		if got := linesOf(sortedLines(c.output(id, 2))); !bytes.Equal(got, want) {
			t.Fatal("output differs after forged messages")
		}
		for _, r := range c.attempts(id) {
			if r.Worker == "mallory" && r.State == AttemptDone {
				t.Fatalf("a forged report finished %s", r.Ref)
			}
		}
		events, tasks, beats := testutil.ToFloat64(c.met.rejected.WithLabelValues("event")), testutil.ToFloat64(c.met.rejected.WithLabelValues("task")),
			testutil.ToFloat64(c.met.rejected.WithLabelValues("heartbeat"))
		if events < 3 || tasks < 1 || beats < 1 {
			t.Fatalf("rejected: %v events, %v tasks, %v heartbeats; want ≥ 3, 1, 1", events, tasks, beats)
		}
		if _, ok := c.coord.Workers()["mallory"]; ok {
			t.Fatal("a forged heartbeat registered a worker")
		}
		if n := keylessRan.Load(); n != 0 {
			t.Fatalf("the keyless worker ran %d sealed attempts", n)
		}
	})
}
