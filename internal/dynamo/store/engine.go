package store

import "fmt"

// Engine names the storage engine under a Store (--engine).
type Engine string

// The engines.
const (
	// EngineBolt is bbolt: a copy-on-write B+tree in one memory-mapped
	// file. A commit writes every page it dirtied and fsyncs twice (pages,
	// then the meta page).
	EngineBolt Engine = "bbolt"
	// EnginePebble is Pebble: a log-structured merge tree. A commit
	// appends the batch to a write-ahead log (one fsync shared by every
	// commit waiting at that moment) and inserts it into a memtable;
	// sorted files are written and merged later, off the write path.
	EnginePebble Engine = "pebble"
)

// ParseEngine reads --engine.
func ParseEngine(s string) (Engine, error) {
	switch Engine(s) {
	case EngineBolt, EnginePebble:
		return Engine(s), nil
	}
	return "", fmt.Errorf("store: --engine %q: want bbolt or pebble", s)
}

// FileName is the name of the store's file (bbolt) or directory (pebble)
// for a node.
func (e Engine) FileName(node string) string {
	if e == EnginePebble {
		return "dynamo-" + node + ".pebble"
	}
	return "dynamo-" + node + ".db"
}

// A space is one of the store's key spaces: the replica's data, the dot
// counters, the store's own metadata, or the hints held for one node.
type space struct {
	kind byte   // 'd', 'c', 'm' or 'h'
	hint string // the intended owner, for kind 'h'
}

var (
	spaceData     = space{kind: 'd'}
	spaceCounters = space{kind: 'c'}
	spaceMeta     = space{kind: 'm'}
)

func hintSpace(target string) space { return space{kind: 'h', hint: target} }

// engine is what a Store needs of its storage: ordered keys in spaces,
// read in views and changed in atomic updates. Values handed to a callback
// are valid only during it.
type engine interface {
	view(fn func(r reader) error) error
	// update runs fn and commits what it wrote as one atomic write, durable
	// as the sync mode says. locks are the storage keys fn reads and
	// writes: updates that share one never overlap, so a read-reconcile-
	// write of a key is never interleaved with another. fn may run more
	// than once (bbolt's Batch retries a batch's members alone after a
	// failure), so it must set its results, not accumulate them.
	update(locks [][]byte, fn func(w writer) error) error
	close() error
}

type reader interface {
	get(sp space, key []byte) ([]byte, error) // nil when absent
	// scan calls fn for the keys of sp at or after from, in order, until
	// fn answers false or an error.
	scan(sp space, from []byte, fn func(key, value []byte) (bool, error)) error
	// hintTargets lists the nodes that hints are held for.
	hintTargets() ([]string, error)
}

type writer interface {
	reader
	put(sp space, key, value []byte) error
	delete(sp space, key []byte) error
}
