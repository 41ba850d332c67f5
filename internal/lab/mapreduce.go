package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/mapreduce"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/plot"
)

// The mapreduce experiment: one word count over a generated Zipf corpus,
// run as a series of trials, each on a fresh in-process cluster (embedded
// NATS, SQLite, the coordinator, N workers) sharing one blob store: workers
// 1 → N; the combiner off; a straggler without and with backup tasks; one
// of three workers killed mid-job.

// MapReduceOptions shape one run.
type MapReduceOptions struct {
	Bytes          int64
	SplitSize      int64
	Reducers       int
	MaxWorkers     int
	StragglerDelay time.Duration
	Lease          time.Duration
}

func mapReduceExperiment() Experiment {
	return Experiment{
		Name: "mapreduce", System: "mapreduce",
		Summary: "a word count with 1→N workers, the combiner off, a straggler with and without backup tasks, a worker killed: time, shuffle bytes, the task timeline",
		Quick:   map[string]string{"mib": "24", "split-mib": "2", "straggler": "3s", "max-workers": "2"},
		Bind: func(fs *pflag.FlagSet) Runner {
			o := MapReduceOptions{Reducers: 4, MaxWorkers: 4, StragglerDelay: 8 * time.Second, Lease: 2 * time.Second}
			var mib, splitMiB int
			fs.IntVar(&mib, "mib", 128, "the corpus's size in MiB (Zipf words, deterministic)")
			fs.IntVar(&splitMiB, "split-mib", 8, "MiB of input per map task")
			fs.IntVar(&o.Reducers, "reducers", o.Reducers, "reduce tasks")
			fs.IntVar(&o.MaxWorkers, "max-workers", o.MaxWorkers, "workers in the largest trial (1, 2, … up to this)")
			fs.DurationVar(&o.StragglerDelay, "straggler", o.StragglerDelay, "how much longer the straggling worker takes over each map task")
			fs.DurationVar(&o.Lease, "lease", o.Lease, "the coordinator's lease: a killed worker's task moves after this")
			return func(ctx context.Context, env Env) (*Report, error) {
				o.Bytes, o.SplitSize = int64(mib)<<20, int64(splitMiB)<<20
				return runMapReduce(ctx, env, o)
			}
		},
	}
}

type mrTrial struct {
	name     string
	workers  int
	params   map[string]string
	backups  bool
	straggle bool
	kill     bool
	res      *mapreduce.TrialResult
}

func runMapReduce(ctx context.Context, env Env, o MapReduceOptions) (*Report, error) {
	if o.Bytes < 1<<20 || o.Bytes > 2<<30 || o.SplitSize < 64<<10 || o.Reducers < 1 || o.Reducers > 64 || o.MaxWorkers < 1 || o.MaxWorkers > 16 {
		return nil, apperr.Usagef("want 1 MiB ≤ --mib ≤ 2048, --split-mib ≥ 1, 1 ≤ --reducers ≤ 64, 1 ≤ --max-workers ≤ 16")
	}
	// The corpus, the trials' brokers, databases and outputs are working
	// files: the report keeps the figures and the timelines.
	work := filepath.Join(env.Dir, "work")
	defer os.RemoveAll(work)
	store, err := blob.NewLocal(filepath.Join(work, "blobs"))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	fmt.Fprintf(env.Log, "generating a %d MiB corpus …\n", o.Bytes>>20)
	input, err := mapreduce.TrialCorpus(ctx, store, o.Bytes)
	if err != nil {
		return nil, err
	}
	var trials []*mrTrial
	for n := 1; n <= o.MaxWorkers; n *= 2 {
		trials = append(trials, &mrTrial{name: fmt.Sprintf("%d worker(s)", n), workers: n, backups: true})
	}
	fw := min(o.MaxWorkers, 2)
	trials = append(trials,
		&mrTrial{name: fmt.Sprintf("%d workers, no combiner", fw), workers: fw, params: map[string]string{"combiner": "off"}, backups: true},
		&mrTrial{name: "3 workers", workers: 3, backups: true},
		&mrTrial{name: "3 workers, a straggler, no backups", workers: 3, straggle: true},
		&mrTrial{name: "3 workers, a straggler, backups", workers: 3, straggle: true, backups: true},
		&mrTrial{name: "3 workers, one killed", workers: 3, kill: true, backups: true},
	)
	for i, t := range trials {
		p := mapreduce.DefaultPolicy()
		p.Lease = o.Lease
		if !t.backups {
			p.BackupFactor = 0
		}
		to := mapreduce.TrialOptions{Dir: filepath.Join(work, fmt.Sprintf("trial-%d", i)), Blob: store, Workers: t.workers, Policy: p,
			Request: mapreduce.SubmitRequest{Job: "wordcount", Params: t.params, Input: input, Reducers: o.Reducers, SplitSize: o.SplitSize}}
		if t.straggle {
			to.StragglerDelay = o.StragglerDelay
		}
		if t.kill {
			to.KillAfter = 2 // as it starts its second task
		}
		res, err := mapreduce.RunTrial(ctx, to)
		if err != nil {
			return nil, fmt.Errorf("mapreduce %s: %w", t.name, err)
		}
		t.res = res
		c := res.Status.Counters
		fmt.Fprintf(env.Log, "%-36s %6.2f s  %6.1f MiB/s  map output %7.1f MiB  attempts %3d (retries %d, backups %d, wasted %d)  output %s\n",
			t.name, res.Seconds, float64(o.Bytes)/(1<<20)/res.Seconds, float64(c.MapOutputBytes)/(1<<20), c.Attempts, c.Retries, c.Backups, c.Wasted, res.Digest[:12])
	}
	rep := mapReduceReport(o, trials)
	rep.Plots = mapReducePlots(o, trials)
	var b strings.Builder
	fmt.Fprintf(&b, "# MapReduce: a word count, trial by trial\n\nA %d MiB Zipf corpus in %d MiB splits, %d reducers; lease %v; the straggler takes %v longer over each map task.\n\n",
		o.Bytes>>20, o.SplitSize>>20, o.Reducers, o.Lease, o.StragglerDelay)
	b.WriteString("| trial | seconds | MiB/s | map tasks | map output MiB | attempts | retries | backups | wasted | output SHA-256 |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range trials {
		s := t.res.Status
		fmt.Fprintf(&b, "| %s | %.2f | %.1f | %d | %.1f | %d | %d | %d | %d | `%s` |\n", t.name, t.res.Seconds, float64(o.Bytes)/(1<<20)/t.res.Seconds,
			s.Maps, float64(s.Counters.MapOutputBytes)/(1<<20), s.Counters.Attempts, s.Counters.Retries, s.Counters.Backups, s.Counters.Wasted, t.res.Digest[:16])
	}
	b.WriteString("\nEach trial's task timeline is a plot beside this report (timeline-N.svg).\n\n" + lessonMarkdown(rep))
	rep.Body = b.String()
	return rep, nil
}

func mapReduceReport(o MapReduceOptions, trials []*mrTrial) *Report {
	r := &Report{Experiment: "mapreduce", System: "mapreduce", Passed: true, Figures: map[string]float64{}}
	by := map[string]*mrTrial{}
	digest := ""
	same := true
	for _, t := range trials {
		by[t.name] = t
		k := strings.NewReplacer(" ", "_", ",", "", "(", "", ")", "").Replace(t.name) + "_"
		r.Figures[k+"seconds"] = t.res.Seconds
		r.Figures[k+"map_output_bytes"] = float64(t.res.Status.Counters.MapOutputBytes)
		r.Figures[k+"attempts"] = float64(t.res.Status.Counters.Attempts)
		if t.params["combiner"] == "off" {
			continue // the same counts, but the same bytes only with the same job
		}
		if digest == "" {
			digest = t.res.Digest
		}
		same = same && t.res.Digest == digest
	}
	if !same {
		r.Passed = false
		r.Lesson = append(r.Lesson, "THE OUTPUT DIFFERED between trials: a deterministic job must give byte-identical output whatever failed.")
	} else {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Every trial's output was byte-identical (SHA-256 %s…), whatever was slow or killed.", digest[:16]))
	}
	one := by["1 worker(s)"]
	var best *mrTrial
	for n := 2; n <= o.MaxWorkers; n *= 2 {
		if t := by[fmt.Sprintf("%d worker(s)", n)]; t != nil && (best == nil || t.res.Seconds < best.res.Seconds) {
			best = t
		}
	}
	if one != nil && best != nil {
		sp := one.res.Seconds / best.res.Seconds
		r.Figures["speedup"] = sp
		r.Lesson = append(r.Lesson, fmt.Sprintf("Workers: 1 took %.2f s, %d took %.2f s — %.2f× faster. Map tasks are independent, so the map phase scales with workers until the machine's cores run out (this one has %d); the reduce phase waits for the last map.",
			one.res.Seconds, best.workers, best.res.Seconds, sp, runtime.NumCPU()))
	}
	fw := min(o.MaxWorkers, 2)
	with, without := by[fmt.Sprintf("%d worker(s)", fw)], by[fmt.Sprintf("%d workers, no combiner", fw)]
	if with != nil && without != nil && with.res.Status.Counters.MapOutputBytes > 0 {
		ratio := float64(without.res.Status.Counters.MapOutputBytes) / float64(with.res.Status.Counters.MapOutputBytes)
		r.Figures["combiner_shuffle_ratio"] = ratio
		r.Lesson = append(r.Lesson, fmt.Sprintf("The combiner: without it the map tasks wrote %.1f MiB for the reducers to fetch, with it %.1f MiB (%.0f× less), and the job took %.2f s instead of %.2f s. A Zipf corpus repeats its common words in every split; summing them on the mapper is the paper's point.",
			float64(without.res.Status.Counters.MapOutputBytes)/(1<<20), float64(with.res.Status.Counters.MapOutputBytes)/(1<<20), ratio, with.res.Seconds, without.res.Seconds))
	}
	base, slowNo, slowYes, killed := by["3 workers"], by["3 workers, a straggler, no backups"], by["3 workers, a straggler, backups"], by["3 workers, one killed"]
	if base != nil && slowNo != nil && slowYes != nil {
		r.Figures["straggler_cost_without_backups"] = slowNo.res.Seconds / base.res.Seconds
		r.Figures["straggler_cost_with_backups"] = slowYes.res.Seconds / base.res.Seconds
		r.Lesson = append(r.Lesson, fmt.Sprintf("A straggler (one worker %v slower per map task): without backup tasks the job took %.2f s (%.2f× the %.2f s of three healthy workers); with them %.2f s (%.2f×), after %d backup attempt(s) — the first copy to finish wins and the other is cancelled.",
			o.StragglerDelay, slowNo.res.Seconds, slowNo.res.Seconds/base.res.Seconds, base.res.Seconds, slowYes.res.Seconds, slowYes.res.Seconds/base.res.Seconds, slowYes.res.Status.Counters.Backups))
		if slowYes.res.Seconds >= slowNo.res.Seconds {
			r.Passed = false
			r.Lesson = append(r.Lesson, "Backup tasks did NOT shorten the straggler's job in this run.")
		}
	}
	if base != nil && killed != nil {
		cost := killed.res.Seconds / base.res.Seconds
		r.Figures["kill_cost"] = cost
		r.Lesson = append(r.Lesson, fmt.Sprintf("One of three workers killed as it started its second task: the job took %.2f s, %.2f× the failure-free %.2f s; its task moved to another worker when its lease (%v) ran out (%d retried attempt(s)).",
			killed.res.Seconds, cost, base.res.Seconds, o.Lease, killed.res.Status.Counters.Retries))
	}
	return r
}

func mapReducePlots(o MapReduceOptions, trials []*mrTrial) map[string]string {
	plots := map[string]string{}
	var groups []string
	var secs []float64
	for i, t := range trials {
		groups = append(groups, t.name)
		secs = append(secs, t.res.Seconds)
		plots[fmt.Sprintf("timeline-%d.svg", i)] = t.res.Timeline
	}
	plots["job-time.svg"] = plot.Bars{Title: fmt.Sprintf("Word count of %d MiB: time per trial", o.Bytes>>20), YLabel: "s", Groups: groups,
		Series: []string{"seconds"}, Values: [][]float64{secs}}.SVG()
	return plots
}
