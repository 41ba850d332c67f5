package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/raftkv"
	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

// The recovery experiment measures how long a raftkv node takes to come
// back after a restart, against the length of its log, with snapshots and
// without: a node replays its log from the last snapshot, so without
// snapshots recovery grows with everything ever written.

// RecoveryOptions shape one run.
type RecoveryOptions struct {
	Entries []int // log lengths to restart from
	Value   int   // bytes per value
}

type recoveryRun struct {
	Entries   int
	Snapshots bool
	Restart   time.Duration // Start until every entry is applied again
	LogBytes  int64
}

func recoveryExperiment() Experiment {
	return Experiment{
		Name: "recovery", System: "raftkv",
		Summary: "How long a raftkv node takes to restart against the length of its log, with snapshots and without",
		Quick:   map[string]string{"entries": "2000,8000"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := RecoveryOptions{Entries: []int{10_000, 40_000, 160_000}, Value: 100}
			fs.IntSliceVar(&opts.Entries, "entries", opts.Entries, "log lengths to restart from")
			fs.IntVar(&opts.Value, "value-bytes", opts.Value, "bytes per value")
			return func(ctx context.Context, env Env) (*Report, error) {
				for _, n := range opts.Entries {
					if n < 100 || n > 10_000_000 {
						return nil, apperr.Usagef("--entries: %d is not 100–10000000", n)
					}
				}
				if opts.Value < 1 || opts.Value > 1<<20 {
					return nil, apperr.Usagef("--value-bytes: 1–1048576")
				}
				return runRecovery(ctx, env, opts)
			}
		},
	}
}

func runRecovery(ctx context.Context, env Env, opts RecoveryOptions) (*Report, error) {
	var runs []recoveryRun
	for _, entries := range opts.Entries {
		for _, snapshots := range []bool{false, true} {
			run, err := recoverOnce(ctx, env, entries, opts.Value, snapshots)
			if err != nil {
				return nil, err
			}
			runs = append(runs, run)
			fmt.Fprintf(env.Log, "%8d entries, snapshots %-5v: log %6.1f MB on disk, restart %v\n", entries, snapshots, float64(run.LogBytes)/1e6, run.Restart.Round(time.Millisecond))
		}
	}
	r := recoveryReport(runs)
	r.Plots = recoveryPlots(runs)
	var b strings.Builder
	b.WriteString("# Recovery time against log length (raftkv)\n\n| entries | snapshots | on disk | restart |\n|---|---|---|---|\n")
	for _, run := range runs {
		fmt.Fprintf(&b, "| %d | %v | %.1f MB | %v |\n", run.Entries, run.Snapshots, float64(run.LogBytes)/1e6, run.Restart.Round(time.Millisecond))
	}
	b.WriteString("\n" + lessonMarkdown(r))
	r.Body = b.String()
	return r, nil
}

// recoverOnce writes entries puts to a one-node cluster, stops it, and
// times its restart until all of them are applied again.
func recoverOnce(ctx context.Context, env Env, entries, valueBytes int, snapshots bool) (recoveryRun, error) {
	dir, err := os.MkdirTemp(env.Dir, "raftkv-recovery-")
	if err != nil {
		return recoveryRun{}, err
	}
	defer os.RemoveAll(dir)
	cfg := raftkv.DefaultConfig()
	cfg.ID, cfg.Peers, cfg.DataDir = 1, []uint64{1}, dir
	cfg.TickInterval = 10 * time.Millisecond // a one-node election in 100 ms: the restart time is the log's, not the timeout's
	cfg.SnapshotEvery = 0
	if snapshots {
		cfg.SnapshotEvery = uint64(max(entries/10, 100))
	}
	net := raftkv.NewNetwork(1) // one node: nothing to send, but Raft asks
	n, err := raftkv.Start(cfg, net.Transport(1))
	if err != nil {
		return recoveryRun{}, err
	}
	value := []byte(strings.Repeat("v", valueBytes))
	if err := fill(ctx, n, entries, value); err != nil {
		_ = n.Stop()
		return recoveryRun{}, err
	}
	target := n.Status().Applied
	if err := n.Stop(); err != nil {
		return recoveryRun{}, err
	}
	size := dirSize(dir)
	start := time.Now()
	n, err = raftkv.Start(cfg, net.Transport(1))
	if err != nil {
		return recoveryRun{}, err
	}
	defer n.Stop()
	err = resilience.Retry(ctx, resilience.Backoff{Initial: time.Millisecond, Attempts: 60_000}, func(context.Context) error {
		if n.Status().Applied < target {
			return fmt.Errorf("applied %d of %d", n.Status().Applied, target)
		}
		return nil
	})
	if err != nil {
		return recoveryRun{}, fmt.Errorf("recovery: the restarted node did not catch up: %w", err)
	}
	return recoveryRun{Entries: entries, Snapshots: snapshots, Restart: time.Since(start), LogBytes: size}, nil
}

// fill proposes entries puts over 64 keys from 64 proposers (Raft batches
// what arrives together into one fsync).
func fill(ctx context.Context, n *raftkv.Node, entries int, value []byte) error {
	if err := resilience.Retry(ctx, resilience.Backoff{Initial: 10 * time.Millisecond, Attempts: 500}, func(context.Context) error {
		if n.Leader() == 0 {
			return raftkv.ErrNoLeader
		}
		return nil
	}); err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for p := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(entries); i = next.Add(1) {
				cmd := kv.Command{Op: kv.OpPut, Key: []byte(fmt.Sprint("k", p)), Value: value, IfRevision: kv.Unconditional}
				if _, err := n.Propose(ctx, cmd); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("recovery: writing the log: %w", err)
	default:
		return nil
	}
}

func dirSize(dir string) int64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return total
}

// recoveryReport states the lesson from the figures.
func recoveryReport(runs []recoveryRun) *Report {
	r := &Report{Experiment: "recovery", System: "raftkv", Passed: true, Figures: map[string]float64{}}
	by := map[bool][]recoveryRun{}
	for _, run := range runs {
		mode := "no_snapshots"
		if run.Snapshots {
			mode = "snapshots"
		}
		key := fmt.Sprintf("%s_%d", mode, run.Entries)
		r.Figures[key+"_restart_ms"] = float64(run.Restart.Microseconds()) / 1000
		r.Figures[key+"_disk_mb"] = float64(run.LogBytes) / 1e6
		by[run.Snapshots] = append(by[run.Snapshots], run)
	}
	plain, snap := by[false], by[true]
	if len(plain) < 2 || len(snap) < 2 {
		r.Lesson = append(r.Lesson, "One log length only: run with two or more --entries to see how recovery grows.")
		return r
	}
	first, last := plain[0], plain[len(plain)-1]
	growth := float64(last.Restart) / float64(max(first.Restart, time.Microsecond))
	r.Lesson = append(r.Lesson, fmt.Sprintf("Without snapshots a restart replays the whole log: %v for %d entries, %v for %d (%.1f× longer for %.0f× the entries).",
		first.Restart.Round(time.Millisecond), first.Entries, last.Restart.Round(time.Millisecond), last.Entries, growth, float64(last.Entries)/float64(first.Entries)))
	sFirst, sLast := snap[0], snap[len(snap)-1]
	r.Lesson = append(r.Lesson, fmt.Sprintf("With a snapshot every tenth of the log, the restart loads the snapshot and replays only the tail: %v for %d entries, %v for %d, on %.1f MB on disk instead of %.1f MB.",
		sFirst.Restart.Round(time.Millisecond), sFirst.Entries, sLast.Restart.Round(time.Millisecond), sLast.Entries, float64(sLast.LogBytes)/1e6, float64(last.LogBytes)/1e6))
	if sLast.Restart < last.Restart {
		r.Lesson = append(r.Lesson, fmt.Sprintf("At %d entries snapshots made the restart %.1f× faster; the store here is %d keys, so its snapshot is small — a store that holds most of what was written gains less.",
			last.Entries, float64(last.Restart)/float64(max(sLast.Restart, time.Microsecond)), 64))
	} else {
		r.Lesson = append(r.Lesson, fmt.Sprintf("At %d entries the snapshots did not make the restart faster (%v vs %v): the log is too short for its replay to cost more than loading a snapshot.",
			last.Entries, sLast.Restart.Round(time.Millisecond), last.Restart.Round(time.Millisecond)))
	}
	return r
}
