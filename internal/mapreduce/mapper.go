package mapreduce

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"
)

// collector gathers one map task's output: partitioned by reducer, sorted
// by key, combined when the job has a combiner, and spilled to sorted
// temporary runs when it outgrows its memory (the paper's buffered pairs,
// written to local disk periodically). A job with a combiner is collected
// in a hash table — each key's values are combined every few emits, so
// memory holds the distinct keys, not the pairs; a job without one, in an
// arena of pairs sorted at each spill.
type collector struct {
	job      Job
	comb     Combiner
	reducers int
	limit    int // bytes held before a spill
	tmpDir   string

	table map[string]*pendingValues // with a combiner
	sums  map[string]*int64         // with a Summer: the running sum of each key, in slab
	slab  []int64
	arena []byte // without: keys and values
	pairs []pairRef
	held  int

	spills []*os.File
	err    error
}

type pendingValues struct {
	part  int
	buf   []byte // uvarint-length-prefixed values
	count int
}

type pairRef struct {
	part       int32
	koff, klen uint32
	voff, vlen uint32
}

// combineEvery is how many values a key gathers before they are combined.
const combineEvery = 16

func newCollector(job Job, reducers, limit int, tmpDir string) *collector {
	c := &collector{job: job, reducers: reducers, limit: limit, tmpDir: tmpDir}
	if comb, ok := job.(Combiner); ok {
		c.comb, c.table = comb, map[string]*pendingValues{}
	}
	if _, ok := job.(Summer); ok {
		c.sums = map[string]*int64{}
	}
	return c
}

func appendValue(buf, v []byte) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(v))), v...)
}

func values(buf []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(buf) > 0 {
			n, k := binary.Uvarint(buf)
			v := buf[k : k+int(n)]
			buf = buf[k+int(n):]
			if !yield(v) {
				return
			}
		}
	}
}

// emit is the job's Emit.
func (c *collector) emit(key, value []byte) {
	if c.err != nil {
		return
	}
	if len(key) > 1<<30 || len(value) > 1<<30 {
		c.err = fmt.Errorf("mapreduce: a pair of %d+%d bytes is too large", len(key), len(value))
		return
	}
	if c.sums != nil {
		n, ok := parseCount(value)
		if !ok {
			c.err = fmt.Errorf("mapreduce: a summed value reads %.40q, not a decimal integer", value)
			return
		}
		// A lookup with string(key) does not allocate; an assignment
		// would, once per pair: so the map holds pointers, into a slab.
		if p, seen := c.sums[string(key)]; seen {
			*p += n
		} else {
			if len(c.slab) == cap(c.slab) {
				c.slab = make([]int64, 0, 4096)
			}
			c.slab = append(c.slab, n)
			c.sums[string(key)] = &c.slab[len(c.slab)-1]
			c.held += len(key) + 56
		}
	} else if c.comb != nil {
		p, ok := c.table[string(key)]
		if !ok {
			p = &pendingValues{part: partitionOf(c.job, key, c.reducers)}
			c.table[string(key)] = p
			c.held += len(key) + 64
		}
		before := len(p.buf)
		p.buf = appendValue(p.buf, value)
		p.count++
		c.held += len(p.buf) - before
		if p.count >= combineEvery {
			c.combine(key, p)
		}
	} else {
		part := partitionOf(c.job, key, c.reducers)
		koff := len(c.arena)
		c.arena = append(c.arena, key...)
		voff := len(c.arena)
		c.arena = append(c.arena, value...)
		c.pairs = append(c.pairs, pairRef{part: int32(part), koff: uint32(koff), klen: uint32(len(key)), voff: uint32(voff), vlen: uint32(len(value))})
		c.held += len(key) + len(value) + 24
		if len(c.arena) > 1<<31 { // offsets are uint32
			c.spill()
		}
	}
	if c.held >= c.limit {
		c.spill()
	}
}

func (c *collector) combine(key []byte, p *pendingValues) {
	before := len(p.buf)
	var out []byte
	n := 0
	c.comb.Combine(key, values(p.buf), func(v []byte) { out = appendValue(out, v); n++ })
	p.buf, p.count = out, n
	c.held += len(p.buf) - before
}

// parseCount reads a decimal integer (an optional sign, then digits).
func parseCount(b []byte) (int64, bool) {
	if len(b) == 1 && '0' <= b[0] && b[0] <= '9' {
		return int64(b[0] - '0'), true // "1", nearly always
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// writeSorted writes what is held as R sorted runs to w and forgets it.
func (c *collector) writeSorted(w io.Writer) error {
	rw := newRunWriter(w, c.reducers)
	if c.sums != nil {
		type entry struct {
			key  string
			part int
			sum  int64
		}
		entries := make([]entry, 0, len(c.sums))
		for k, n := range c.sums {
			entries = append(entries, entry{k, partitionOf(c.job, []byte(k), c.reducers), *n})
		}
		slices.SortFunc(entries, func(a, b entry) int {
			if a.part != b.part {
				return a.part - b.part
			}
			return strings.Compare(a.key, b.key)
		})
		part := -1
		var kb, vb []byte
		for _, e := range entries {
			if e.part != part {
				part = e.part
				rw.startRun(part)
			}
			kb, vb = append(kb[:0], e.key...), strconv.AppendInt(vb[:0], e.sum, 10)
			if err := rw.put(kb, vb); err != nil {
				return err
			}
		}
		clear(c.sums)
		c.slab = nil
	} else if c.comb != nil {
		type entry struct {
			key string
			p   *pendingValues
		}
		entries := make([]entry, 0, len(c.table))
		for k, p := range c.table {
			entries = append(entries, entry{k, p})
		}
		slices.SortFunc(entries, func(a, b entry) int {
			if a.p.part != b.p.part {
				return a.p.part - b.p.part
			}
			return strings.Compare(a.key, b.key)
		})
		part := -1
		var kb []byte
		for _, e := range entries {
			if e.p.part != part {
				part = e.p.part
				rw.startRun(part)
			}
			kb = append(kb[:0], e.key...)
			if e.p.count > 1 {
				c.combine(kb, e.p)
			}
			for v := range values(e.p.buf) {
				if err := rw.put(kb, v); err != nil {
					return err
				}
			}
		}
		clear(c.table)
	} else {
		slices.SortStableFunc(c.pairs, func(a, b pairRef) int {
			if a.part != b.part {
				return int(a.part - b.part)
			}
			return bytes.Compare(c.arena[a.koff:a.koff+a.klen], c.arena[b.koff:b.koff+b.klen])
		})
		part := -1
		for _, p := range c.pairs {
			if int(p.part) != part {
				part = int(p.part)
				rw.startRun(part)
			}
			if err := rw.put(c.arena[p.koff:p.koff+p.klen], c.arena[p.voff:p.voff+p.vlen]); err != nil {
				return err
			}
		}
		c.arena, c.pairs = c.arena[:0], c.pairs[:0]
	}
	c.held = 0
	return rw.close()
}

// spill writes what is held to a temporary sorted run.
func (c *collector) spill() {
	if c.err != nil {
		return
	}
	f, err := os.CreateTemp(c.tmpDir, "mapreduce-spill-*")
	if err != nil {
		c.err = fmt.Errorf("mapreduce: spill: %w", err)
		return
	}
	_ = os.Remove(f.Name()) // gone with the file handle, whatever happens to the task
	if err := c.writeSorted(f); err != nil {
		f.Close()
		c.err = fmt.Errorf("mapreduce: spill: %w", err)
		return
	}
	c.spills = append(c.spills, f)
}

// finish writes the task's output object to w: what is held, merged with
// the spills (and combined across them).
func (c *collector) finish(w io.Writer) error {
	defer func() {
		for _, f := range c.spills {
			f.Close()
		}
	}()
	if c.err != nil {
		return c.err
	}
	if len(c.spills) == 0 {
		return c.writeSorted(w)
	}
	c.spill()
	if c.err != nil {
		return c.err
	}
	rw := newRunWriter(w, c.reducers)
	for part := 0; part < c.reducers; part++ {
		rw.startRun(part)
		runs := make([]*runReader, len(c.spills))
		for i, f := range c.spills {
			r, err := openRun(f, part, 256<<10)
			if err != nil {
				return err
			}
			runs[i] = r
		}
		err := mergeRuns(runs, func(key []byte, vs iter.Seq[[]byte]) error {
			if c.comb == nil {
				for v := range vs {
					if err := rw.put(key, v); err != nil {
						return err
					}
				}
				return nil
			}
			var werr error
			c.comb.Combine(key, vs, func(v []byte) {
				if werr == nil {
					werr = rw.put(key, v)
				}
			})
			return werr
		})
		if err != nil {
			return err
		}
	}
	return rw.close()
}

// MapOptions bound a map task.
type MapOptions struct {
	Reducers  int
	MaxRecord int    // the longest line accepted (default 64 MiB)
	Memory    int    // bytes of pairs held before a spill (default 64 MiB)
	TmpDir    string // where spills go (default os.TempDir())
}

// RunMap runs job's map over one split read from in, writing the task's
// output object (R sorted runs and their index) to out. It returns the
// number of records read.
func RunMap(job Job, in io.ReadSeeker, sp Split, opts MapOptions, out io.Writer) (int64, error) {
	if opts.Reducers < 1 {
		return 0, fmt.Errorf("mapreduce: %d reducers", opts.Reducers)
	}
	if opts.MaxRecord <= 0 {
		opts.MaxRecord = 64 << 20
	}
	if opts.Memory <= 0 {
		opts.Memory = 64 << 20
	}
	c := newCollector(job, opts.Reducers, opts.Memory, opts.TmpDir)
	var records int64
	err := ReadSplit(in, sp, opts.MaxRecord, func(rec Record) error {
		records++
		job.Map(rec, c.emit)
		return c.err
	})
	if err != nil {
		return records, err
	}
	return records, c.finish(out)
}

// RunReduce merges reducer r's runs of every map output and runs job's
// reduce over them, writing the output's lines to out.
func RunReduce(job Job, runs []*runReader, out io.Writer) (int64, error) {
	bw := newLineWriter(out)
	var keys int64
	err := mergeRuns(runs, func(key []byte, vs iter.Seq[[]byte]) error {
		keys++
		job.Reduce(key, vs, bw.line)
		return bw.err
	})
	if err != nil {
		return keys, err
	}
	return keys, bw.flush()
}
