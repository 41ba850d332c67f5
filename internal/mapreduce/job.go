package mapreduce

import (
	"fmt"
	"hash/fnv"
	"iter"
	"sort"
	"strings"
)

// Emit receives one intermediate pair from a map function. The slices are
// the caller's: they are copied before Emit returns.
type Emit func(key, value []byte)

// Record is one input record: a line without its newline, the file it
// came from and the byte offset where it starts.
type Record struct {
	File   string
	Offset int64
	Data   []byte
}

// Job is a MapReduce program: the two functions of the paper. Map sees
// one input record; Reduce sees one key and every value emitted for it, in
// no promised order, and emits the lines of the output. Both must be
// deterministic for the output to be byte-identical whatever failed.
type Job interface {
	Map(rec Record, emit Emit)
	Reduce(key []byte, values iter.Seq[[]byte], emit func(line []byte))
}

// Combiner is a Job whose map output can be reduced early, on the mapper,
// into pairs of the same kind (word count's partial sums): the paper's
// combiner function. It must be associative and commutative.
type Combiner interface {
	Combine(key []byte, values iter.Seq[[]byte], emit func(value []byte))
}

// Summer is a Combiner whose values are decimal integers and whose
// combining is their sum (word count's counts; Hadoop's IntSumReducer used
// as a combiner). The map side then keeps one integer per key instead of a
// list of values to combine: one hash lookup and an add per pair, which
// the profile of a word count asked for (the values' bookkeeping cost as
// much as the counting).
type Summer interface {
	Combiner
	SumsValues()
}

// Partitioner is a Job that chooses the reducer of each key itself (the
// sort job's range partitioner); otherwise a key goes to hash(key) mod R.
type Partitioner interface {
	Partition(key []byte, reducers int) int
}

// HashPartition is the default partition function, hash(key) mod R.
func HashPartition(key []byte, reducers int) int {
	h := fnv.New32a()
	_, _ = h.Write(key)
	return int(h.Sum32()&0x7fffffff) % reducers
}

// Finisher is a Job with a last, sequential step over the whole output
// (top-k's global top k): the coordinator runs it once every reduce task
// is done, over the output's lines in partition order, and stores what it
// emits as the job's result.
type Finisher interface {
	Finish(lines iter.Seq[[]byte], emit func(line []byte))
}

// Params are a job's arguments (grep's pattern, top-k's k), given at
// submission as name=value.
type Params map[string]string

// Definition is a job users can submit by name.
type Definition struct {
	Name        string
	Description string
	// New makes the job from its parameters, or says what is wrong with
	// them.
	New func(p Params) (Job, error)
	// Cuts, when set, makes the job range-partitioned: the coordinator
	// samples the input's records, Cuts turns the sample into the R-1 keys
	// that split the key space evenly, and they reach New as the
	// "cuts" parameter.
	Cuts func(sample [][]byte, reducers int) [][]byte
}

var registry = map[string]Definition{}

// Register adds a job; a user's job is one more call of it.
func Register(d Definition) {
	if _, dup := registry[d.Name]; dup {
		panic("mapreduce: job " + d.Name + " registered twice")
	}
	registry[d.Name] = d
}

// Lookup is the job registered under name.
func Lookup(name string) (Definition, error) {
	d, ok := registry[name]
	if !ok {
		return Definition{}, fmt.Errorf("mapreduce: no job %q (there are: %s)", name, strings.Join(JobNames(), ", "))
	}
	return d, nil
}

// JobNames lists the registered jobs.
func JobNames() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// partitionOf is where key goes among reducers.
func partitionOf(j Job, key []byte, reducers int) int {
	if p, ok := j.(Partitioner); ok {
		return p.Partition(key, reducers)
	}
	return HashPartition(key, reducers)
}
