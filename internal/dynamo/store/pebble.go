package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleEngine keeps every space in one Pebble key space, each key
// prefixed by its space: 'd', 'c' or 'm', or for hints 'h', the owner's
// length (one byte) and name.
//
// Pebble has no transactions, so a read-reconcile-write holds a lock on
// each storage key it touches (one of lockStripes, chosen by the key's
// ring hash) from its read until its commit is durable: writes of
// different keys commit concurrently and share the log's fsync.
type pebbleEngine struct {
	db    *pebble.DB
	write *pebble.WriteOptions
	locks [lockStripes]sync.Mutex

	mu      sync.Mutex
	targets map[string]bool // hint owners with at least one hint
}

const lockStripes = 1024

func openPebble(dir string, sync SyncMode) (*pebbleEngine, error) {
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		Cache:              cache,
		MemTableSize:       64 << 20,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{},
	})
	if err != nil {
		return nil, err
	}
	e := &pebbleEngine{db: db, write: pebble.Sync, targets: map[string]bool{}}
	if sync == SyncNone {
		e.write = pebble.NoSync
	}
	// Pebble shares one log fsync among every commit waiting on it, so
	// --sync always and batch both commit each update at once and wait
	// for the log: there is no batch to gather.
	if err := e.loadTargets(); err != nil {
		db.Close()
		return nil, err
	}
	return e, nil
}

func (e *pebbleEngine) loadTargets() error {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte("h"), UpperBound: []byte("i")})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; {
		target, _, err := splitHintKey(it.Key())
		if err != nil {
			return err
		}
		e.targets[target] = true
		ok = it.SeekGE(prefixEnd(hintPrefix(target)))
	}
	return it.Error()
}

func hintPrefix(target string) []byte {
	return append([]byte{'h', byte(len(target))}, target...)
}

func splitHintKey(k []byte) (target string, key []byte, err error) {
	if len(k) < 2 || len(k) < 2+int(k[1]) {
		return "", nil, fmt.Errorf("store: malformed hint key %x", k)
	}
	return string(k[2 : 2+k[1]]), k[2+k[1]:], nil
}

// prefix is a space's key prefix.
func prefix(sp space) []byte {
	if sp.kind == 'h' {
		return hintPrefix(sp.hint)
	}
	return []byte{sp.kind}
}

func encodeKey(sp space, key []byte) []byte {
	return append(prefix(sp), key...)
}

// prefixEnd is the first key after every key that starts with p (p is
// never all 0xff here: every prefix begins with a letter).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func (e *pebbleEngine) view(fn func(r reader) error) error {
	return fn(pebbleReader{e: e, lookup: e.db.Get, newIter: e.db.NewIter})
}

func (e *pebbleEngine) update(locks [][]byte, fn func(w writer) error) error {
	stripes := make([]int, 0, len(locks))
	for _, k := range locks {
		stripes = append(stripes, stripeOf(k))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, s := range stripes { // in order: two updates never wait on each other
		e.locks[s].Lock()
	}
	defer func() {
		for _, s := range stripes {
			e.locks[s].Unlock()
		}
	}()
	b := e.db.NewIndexedBatch()
	defer b.Close()
	w := &pebbleWriter{pebbleReader: pebbleReader{e: e, lookup: b.Get, newIter: b.NewIter}, batch: b}
	if err := fn(w); err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(e.write); err != nil {
		return err
	}
	if len(w.added) > 0 {
		e.mu.Lock()
		for t := range w.added {
			e.targets[t] = true
		}
		e.mu.Unlock()
	}
	for t := range w.emptied {
		if err := e.dropIfEmpty(t); err != nil {
			return err
		}
	}
	return nil
}

func stripeOf(storageKey []byte) int {
	var h uint64
	for _, c := range storageKey[:min(8, len(storageKey))] { // the ring hash
		h = h<<8 | uint64(c)
	}
	return int(h % lockStripes)
}

// dropIfEmpty forgets target once it has no hints. A put of a hint adds
// its owner after its commit, so a put racing with this either is seen
// by the scan or adds the owner back: the set never misses an owner that
// has hints when the put returns.
func (e *pebbleEngine) dropIfEmpty(target string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := hintPrefix(target)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	if !it.First() {
		delete(e.targets, target)
	}
	return it.Error()
}

func (e *pebbleEngine) close() error { return e.db.Close() }

type pebbleReader struct {
	e       *pebbleEngine
	lookup  func(key []byte) ([]byte, io.Closer, error)
	newIter func(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func (r pebbleReader) getKey(k []byte) ([]byte, error) {
	v, closer, err := r.lookup(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func (r pebbleReader) get(sp space, key []byte) ([]byte, error) {
	return r.getKey(encodeKey(sp, key))
}

func (r pebbleReader) scan(sp space, from []byte, fn func(key, value []byte) (bool, error)) error {
	p := prefix(sp)
	it, err := r.newIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	for ok := it.SeekGE(append(p, from...)); ok; ok = it.Next() {
		if more, err := fn(it.Key()[len(p):], it.Value()); !more || err != nil {
			return errors.Join(err, it.Close())
		}
	}
	return errors.Join(it.Error(), it.Close())
}

func (r pebbleReader) hintTargets() ([]string, error) {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	out := make([]string, 0, len(r.e.targets))
	for t := range r.e.targets {
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

type pebbleWriter struct {
	pebbleReader
	batch   *pebble.Batch
	added   map[string]bool // hint owners written to
	emptied map[string]bool // hint owners deleted from
}

func (w *pebbleWriter) put(sp space, key, value []byte) error {
	if sp.kind == 'h' {
		if len(sp.hint) > 255 {
			return fmt.Errorf("store: hint owner name of %d bytes", len(sp.hint))
		}
		if w.added == nil {
			w.added = map[string]bool{}
		}
		w.added[sp.hint] = true
	}
	return w.batch.Set(encodeKey(sp, key), value, nil)
}

func (w *pebbleWriter) delete(sp space, key []byte) error {
	if sp.kind == 'h' {
		if w.emptied == nil {
			w.emptied = map[string]bool{}
		}
		w.emptied[sp.hint] = true
	}
	return w.batch.Delete(encodeKey(sp, key), nil)
}

// pebbleLogger sends Pebble's errors to slog and drops its chatter.
type pebbleLogger struct{}

func (pebbleLogger) Infof(string, ...any) {}
func (pebbleLogger) Errorf(format string, args ...any) {
	slog.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (pebbleLogger) Fatalf(format string, args ...any) {
	slog.Error("pebble (fatal): " + fmt.Sprintf(format, args...))
	os.Exit(1)
}
