package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/spf13/pflag"
)

// The concurrency experiment is the course's concurrency homework, run for
// real: a shared counter and a shared map under 1…N goroutines, with each
// way Go offers to share them, and the cost of writing a file a line at a
// time versus through a buffer. Its machinery lives here, not in a system:
// what it measures is the language and the machine.

// ConcurrencyOptions shape one run.
type ConcurrencyOptions struct {
	Goroutines []int // each counter and map variant runs at each of these
	Ops        int   // operations per goroutine
	ReadShare  int   // percentage of map operations that are reads
	FileLines  int   // lines written in the file comparison
}

// counterResult is one counter variant at one goroutine count.
type counterResult struct {
	Variant    string
	Goroutines int
	Final      int64
	Want       int64
	NsPerOp    float64
}

// mapResult is one map variant at one goroutine count.
type mapResult struct {
	Variant    string
	Goroutines int
	OpsPerSec  float64
}

func concurrencyExperiment() Experiment {
	return Experiment{
		Name: "concurrency", System: "go",
		Summary: "A shared counter and map under many goroutines: what an unsynchronised update loses, and what atomic, Mutex, RWMutex, sync.Map, shards and a channel owner cost",
		Quick:   map[string]string{"ops": "100000", "goroutines": "1,4,16", "file-lines": "20000"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := ConcurrencyOptions{Goroutines: []int{1, 2, 4, 8, 16, 64}, Ops: 200_000, ReadShare: 90, FileLines: 200_000}
			fs.IntSliceVar(&opts.Goroutines, "goroutines", opts.Goroutines, "goroutine counts to run each variant at")
			fs.IntVar(&opts.Ops, "ops", opts.Ops, "operations per goroutine")
			fs.IntVar(&opts.ReadShare, "read-share", opts.ReadShare, "percentage of map operations that are reads")
			fs.IntVar(&opts.FileLines, "file-lines", opts.FileLines, "lines written in the buffered/unbuffered file comparison")
			return func(ctx context.Context, env Env) (*Report, error) {
				return runConcurrency(ctx, env, opts)
			}
		},
	}
}

func runConcurrency(ctx context.Context, env Env, opts ConcurrencyOptions) (*Report, error) {
	if opts.Ops < 1 || len(opts.Goroutines) == 0 || opts.ReadShare < 0 || opts.ReadShare > 100 || opts.FileLines < 1 {
		return nil, apperr.Usagef("want --ops ≥ 1, --goroutines, 0 ≤ --read-share ≤ 100, --file-lines ≥ 1")
	}
	sort.Ints(opts.Goroutines)
	var counters []counterResult
	var maps []mapResult
	for _, g := range opts.Goroutines {
		if g < 1 || g > 10_000 {
			return nil, apperr.Usagef("--goroutines: %d is not 1–10000", g)
		}
		for _, v := range counterVariants {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if v.fn == nil {
				continue // the unsynchronised counter is not built under the race detector
			}
			start := time.Now()
			final := v.fn(g, opts.Ops)
			r := counterResult{Variant: v.name, Goroutines: g, Final: final, Want: int64(g * opts.Ops),
				NsPerOp: float64(time.Since(start).Nanoseconds()) / float64(g*opts.Ops)}
			counters = append(counters, r)
			fmt.Fprintf(env.Log, "counter %-16s %4d goroutines: %10d of %10d  %7.1f ns/op\n", r.Variant, g, r.Final, r.Want, r.NsPerOp)
		}
		for _, v := range mapVariants {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			m := v.make()
			start := time.Now()
			runMap(m, g, opts.Ops, opts.ReadShare)
			r := mapResult{Variant: v.name, Goroutines: g, OpsPerSec: float64(g*opts.Ops) / time.Since(start).Seconds()}
			maps = append(maps, r)
			fmt.Fprintf(env.Log, "map     %-16s %4d goroutines: %12.0f ops/s (%d %% reads)\n", r.Variant, g, r.OpsPerSec, opts.ReadShare)
		}
	}
	unbuffered, buffered, err := fileWrites(env.Dir, opts.FileLines)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Log, "file    %d lines: unbuffered %v, buffered %v\n", opts.FileLines, unbuffered, buffered)
	r := concurrencyReport(opts, counters, maps, unbuffered, buffered)
	r.Plots = concurrencyPlots(counters, maps)
	r.Body = "# The concurrency experiment\n\n" + fmt.Sprintf("GOMAXPROCS=%d, %s/%s, %s\n\n", runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version()) +
		concurrencyTables(counters, maps) + lessonMarkdown(r)
	return r, nil
}

// concurrencyReport states the lesson from the figures.
func concurrencyReport(opts ConcurrencyOptions, counters []counterResult, maps []mapResult, unbuffered, buffered time.Duration) *Report {
	r := &Report{Experiment: "concurrency", System: "go", Passed: true, Figures: map[string]float64{}}
	maxG := opts.Goroutines[len(opts.Goroutines)-1]
	at := map[string]counterResult{}
	for _, c := range counters {
		key := fmt.Sprintf("counter_%s_g%d", c.Variant, c.Goroutines)
		r.Figures[key+"_ns_per_op"] = c.NsPerOp
		if c.Variant == "unsynchronised" {
			r.Figures[key+"_lost"] = float64(c.Want - c.Final)
		} else if c.Final != c.Want {
			r.Passed = false // a synchronised counter must be exact
			r.Lesson = append(r.Lesson, fmt.Sprintf("%s lost %d of %d increments at %d goroutines: it is not synchronised.", c.Variant, c.Want-c.Final, c.Want, c.Goroutines))
		}
		if c.Goroutines == maxG {
			at[c.Variant] = c
		}
	}
	if u, ok := at["unsynchronised"]; ok {
		if lost := u.Want - u.Final; lost > 0 {
			r.Lesson = append(r.Lesson, fmt.Sprintf("Unsynchronised, %d goroutines lost %d of %d increments (%.1f %%): two goroutines read the same value and both write it back plus one.",
				maxG, lost, u.Want, 100*float64(lost)/float64(u.Want)))
		} else {
			r.Lesson = append(r.Lesson, fmt.Sprintf("Unsynchronised, no increment was lost at %d goroutines in this run — which proves nothing: the race is there (go test -race reports it), it just did not strike.", maxG))
		}
	} else {
		r.Lesson = append(r.Lesson, "The unsynchronised counter was not run: this binary was built with the race detector, which would stop it.")
	}
	if a, m := at["atomic"], at["mutex"]; a.NsPerOp > 0 && m.NsPerOp > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Exact counting at %d goroutines: atomic.Int64 %.1f ns/op, sync.Mutex %.1f ns/op (%.1f× the atomic), a channel owner %.1f ns/op — one hot word shared by every core is the bottleneck whatever guards it.",
			maxG, a.NsPerOp, m.NsPerOp, m.NsPerOp/a.NsPerOp, at["channel-owner"].NsPerOp))
	}
	best := map[int]mapResult{}
	byVariant := map[string]mapResult{}
	for _, m := range maps {
		r.Figures[fmt.Sprintf("map_%s_g%d_ops_per_s", m.Variant, m.Goroutines)] = m.OpsPerSec
		if m.OpsPerSec > best[m.Goroutines].OpsPerSec {
			best[m.Goroutines] = m
		}
		if m.Goroutines == maxG {
			byVariant[m.Variant] = m
		}
	}
	if b, mu := best[maxG], byVariant["mutex"]; mu.OpsPerSec > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("The map at %d goroutines and %d %% reads: fastest %s at %.0f ops/s, %.1f× a single Mutex (RWMutex %.1f×, sync.Map %.1f×, 32 shards %.1f×).",
			maxG, opts.ReadShare, b.Variant, b.OpsPerSec, b.OpsPerSec/mu.OpsPerSec,
			byVariant["rwmutex"].OpsPerSec/mu.OpsPerSec, byVariant["sync.Map"].OpsPerSec/mu.OpsPerSec, byVariant["sharded"].OpsPerSec/mu.OpsPerSec))
	}
	r.Figures["file_unbuffered_ms"], r.Figures["file_buffered_ms"] = float64(unbuffered.Microseconds())/1000, float64(buffered.Microseconds())/1000
	if buffered > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Writing %d lines one write(2) each took %v; through a 64 KiB bufio.Writer %v (%.0f× faster): the cost is the system call, not the bytes.",
			opts.FileLines, unbuffered.Round(time.Millisecond), buffered.Round(time.Millisecond), float64(unbuffered)/float64(buffered)))
	}
	return r
}

func concurrencyTables(counters []counterResult, maps []mapResult) string {
	var b strings.Builder
	b.WriteString("| counter | goroutines | final / expected | ns/op |\n|---|---|---|---|\n")
	for _, c := range counters {
		fmt.Fprintf(&b, "| %s | %d | %d / %d | %.1f |\n", c.Variant, c.Goroutines, c.Final, c.Want, c.NsPerOp)
	}
	b.WriteString("\n| map | goroutines | ops/s |\n|---|---|---|\n")
	for _, m := range maps {
		fmt.Fprintf(&b, "| %s | %d | %.0f |\n", m.Variant, m.Goroutines, m.OpsPerSec)
	}
	b.WriteString("\n")
	return b.String()
}

// counterVariants add ops increments from each of g goroutines and return
// the final count.
var counterVariants = []struct {
	name string
	fn   func(g, ops int) int64
}{
	{"unsynchronised", unsynchronisedCounter},
	{"atomic", func(g, ops int) int64 {
		var n atomic.Int64
		parallel(g, func() {
			for range ops {
				n.Add(1)
			}
		})
		return n.Load()
	}},
	{"mutex", func(g, ops int) int64 {
		var mu sync.Mutex
		var n int64
		parallel(g, func() {
			for range ops {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
		return n
	}},
	{"channel-owner", func(g, ops int) int64 {
		inc := make(chan int64, 1024)
		done := make(chan int64)
		go func() {
			var n int64
			for d := range inc {
				n += d
			}
			done <- n
		}()
		parallel(g, func() {
			for range ops {
				inc <- 1
			}
		})
		close(inc)
		return <-done
	}},
}

// parallel runs fn in g goroutines that start together (a barrier), so
// that they overlap instead of finishing one by one as they are started.
func parallel(g int, fn func()) {
	var wg, ready sync.WaitGroup
	start := make(chan struct{})
	for range g {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			fn()
		}()
	}
	ready.Wait()
	close(start)
	wg.Wait()
}

// sharedMap is what the map variants share.
type sharedMap interface {
	get(k int) (int, bool)
	put(k, v int)
}

var mapVariants = []struct {
	name string
	make func() sharedMap
}{
	{"mutex", func() sharedMap { return &mutexMap{m: map[int]int{}} }},
	{"rwmutex", func() sharedMap { return &rwMap{m: map[int]int{}} }},
	{"sync.Map", func() sharedMap { return &syncMap{} }},
	{"sharded", func() sharedMap { return newShardedMap(32) }},
}

type mutexMap struct {
	mu sync.Mutex
	m  map[int]int
}

func (s *mutexMap) get(k int) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok
}
func (s *mutexMap) put(k, v int) { s.mu.Lock(); s.m[k] = v; s.mu.Unlock() }

type rwMap struct {
	mu sync.RWMutex
	m  map[int]int
}

func (s *rwMap) get(k int) (int, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[k]
	return v, ok
}
func (s *rwMap) put(k, v int) { s.mu.Lock(); s.m[k] = v; s.mu.Unlock() }

type syncMap struct{ m sync.Map }

func (s *syncMap) get(k int) (int, bool) {
	v, ok := s.m.Load(k)
	if !ok {
		return 0, false
	}
	return v.(int), true
}
func (s *syncMap) put(k, v int) { s.m.Store(k, v) }

type shardedMap struct{ shards []mutexMap }

func newShardedMap(n int) *shardedMap {
	s := &shardedMap{shards: make([]mutexMap, n)}
	for i := range s.shards {
		s.shards[i].m = map[int]int{}
	}
	return s
}
func (s *shardedMap) shard(k int) *mutexMap { return &s.shards[uint(k)%uint(len(s.shards))] }
func (s *shardedMap) get(k int) (int, bool) { return s.shard(k).get(k) }
func (s *shardedMap) put(k, v int)          { s.shard(k).put(k, v) }

// runMap has g goroutines each do ops operations on 1,024 keys, readShare
// percent of them reads, in a fixed pattern per goroutine.
func runMap(m sharedMap, g, ops, readShare int) {
	for k := range 1024 {
		m.put(k, k)
	}
	parallel(g, func() {
		x := uint32(2463534242)
		for i := range ops {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			k := int(x % 1024)
			if int(x%100) < readShare {
				m.get(k)
			} else {
				m.put(k, i)
			}
		}
	})
}

// fileWrites writes lines to a file one Write call each, then through a
// buffer, and returns both times (each including the final fsync).
func fileWrites(dir string, lines int) (unbuffered, buffered time.Duration, err error) {
	line := []byte("a line of a log file, as a program writes it\n")
	write := func(name string, wrap func(io.Writer) (io.Writer, func() error)) (time.Duration, error) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		start := time.Now()
		w, flush := wrap(f)
		for range lines {
			if _, err := w.Write(line); err != nil {
				return 0, err
			}
		}
		if err := flush(); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	if unbuffered, err = write("unbuffered.log", func(f io.Writer) (io.Writer, func() error) { return f, func() error { return nil } }); err != nil {
		return 0, 0, err
	}
	buffered, err = write("buffered.log", func(f io.Writer) (io.Writer, func() error) {
		bw := bufio.NewWriterSize(f, 64<<10)
		return bw, bw.Flush
	})
	return unbuffered, buffered, err
}
