package mapreduce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// A trial is one job on a cluster of its own in this process — an
// embedded NATS server, SQLite, the coordinator and N workers — sharing a
// blob store with the other trials of an experiment (so the corpus is
// generated once). The lab's mapreduce experiment is a series of trials.

// TrialOptions shape one trial.
type TrialOptions struct {
	Dir     string     // the trial's own broker and database go here
	Blob    blob.Store // shared: the input and every trial's output
	Request SubmitRequest
	Workers int
	Policy  Policy
	// StragglerDelay makes worker 0 a bad machine: each map task it runs
	// takes this much longer (it keeps heartbeating).
	StragglerDelay time.Duration
	// KillAfter > 0 crashes worker 0 as it starts its KillAfter-th task;
	// it is not replaced.
	KillAfter int
	Limit     time.Duration // the job must end within this (default 10 min)
	Log       *slog.Logger
}

// TrialResult is what a trial measured.
type TrialResult struct {
	Status   *JobStatus
	Seconds  float64 // submission to done
	Digest   string  // SHA-256 of the parts concatenated in order
	Timeline string  // the Gantt SVG
}

// TrialCorpus generates (again: it is deterministic) the trials' corpus
// of about size bytes and returns it as an input.
func TrialCorpus(ctx context.Context, store blob.Store, size int64) (string, error) {
	return GenerateCorpus(ctx, store, fmt.Sprintf("trial-%d", size), 1, size)
}

// RunTrial runs one job on a fresh cluster and returns its figures.
func RunTrial(ctx context.Context, o TrialOptions) (*TrialResult, error) {
	if o.Workers < 1 {
		return nil, fmt.Errorf("mapreduce: a trial needs a worker")
	}
	if o.Limit <= 0 {
		o.Limit = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b, err := broker.Open(ctx, "", broker.Options{Namespace: "mapreduce", DataDir: filepath.Join(o.Dir, "nats")})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	db, err := sqldb.Open(ctx, "", o.Dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := openStore(ctx, db)
	if err != nil {
		return nil, err
	}
	met := newMetrics(nil)
	coord := newCoordinator(st, b, o.Blob, o.Policy, time.Now, o.Log, met)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	coordErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); coordErr <- coord.Run(ctx) }()
	select {
	case <-coord.Ready():
	case err := <-coordErr:
		return nil, err
	}
	for i := 0; i < o.Workers; i++ {
		cfg := WorkerConfig{ID: fmt.Sprintf("worker-%d", i), Slots: 1, Heartbeat: min(time.Second, o.Policy.Lease/4), TmpDir: o.Dir}
		if i == 0 && (o.StragglerDelay > 0 || o.KillAfter > 0) {
			n := 0
			var mu sync.Mutex
			cfg.Fault = func(ref attemptRef) Fault {
				mu.Lock()
				defer mu.Unlock()
				n++
				if o.KillAfter > 0 && n >= o.KillAfter {
					return Fault{Crash: true}
				}
				if ref.Kind == "map" {
					return Fault{Slow: o.StragglerDelay}
				}
				return Fault{}
			}
		}
		w := newWorker(cfg, b, o.Blob, o.Log, met)
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Run(ctx) }()
	}
	j, err := coord.Submit(ctx, o.Request)
	if err != nil {
		return nil, err
	}
	id := j.Spec.ID
	deadline := time.Now().Add(o.Limit)
	for {
		j, err = st.job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.State == JobDone || j.State == JobFailed {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("mapreduce: trial job %s not done within %v", id, o.Limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	status, err := coord.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	res := &TrialResult{Status: status, Seconds: status.Seconds, Timeline: status.Timeline()}
	if j.State != JobDone {
		return res, fmt.Errorf("mapreduce: trial job %s failed: %s", id, j.Error)
	}
	h := sha256.New()
	for _, key := range status.Output {
		if err := copyObject(ctx, o.Blob, key, h); err != nil {
			return nil, err
		}
	}
	res.Digest = hex.EncodeToString(h.Sum(nil))
	return res, nil
}
