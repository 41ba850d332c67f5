// Package store is one Dynamo node's durable storage: for each key, the set
// of versions that survived reconciliation (vclock.Reconcile). Every write
// reads the stored versions, reconciles the incoming ones into them and
// writes the result in one atomic commit, so concurrent writes to a key on
// one node serialise and never lose a version.
//
// # Engines
//
// Two engines sit under the same Store (--engine), behind a small
// interface (engine.go) of ordered key spaces, views and atomic updates:
//
//	bbolt   a copy-on-write B+tree in one file (the default). One writer
//	        at a time; a commit writes every page it dirtied and fsyncs.
//	pebble  a log-structured merge tree. A commit appends to a write-ahead
//	        log whose fsync every waiting commit shares; pages are written
//	        later, by flushes and compactions off the write path. There
//	        are no transactions: a read-reconcile-write holds a lock on
//	        its key's stripe (one of 1024, by ring hash) until it is
//	        durable, so writes to different keys still commit together.
//
// Measured side by side under the bench's put load (docs/dynamo.md), the
// two did the same number of puts: what Pebble saves at commit it spends
// on reads, and every write here is a read first. A Pebble point read
// seeks a memtable skiplist (a cache miss per level) where bbolt walks
// three or four B+tree pages, and a put on a coordinator reads four
// times (the key's versions and its counter, then both again under the
// lock).
// bbolt is the default for its better tail latency; Pebble stays for
// stores whose writes outnumber their reads, and to show the trade.
//
// Durability follows --sync:
//
//	always  each write commits and fsyncs before it returns (an acknowledged write survives a crash)
//	batch   writes from concurrent callers share one commit and fsync (bbolt's Batch; Pebble
//	        always shares its log fsync): the same guarantee per acknowledged write, with fewer
//	        fsyncs under load
//	none    commits without fsync: fastest, a crash can lose recent writes
//
// Keys are stored under their ring hash (big-endian) followed by the key,
// so that a key range of the ring is a contiguous scan: the unit of
// Merkle-tree anti-entropy and of range hand-off.
//
// Hinted writes (sloppy quorum: this node holds a replica for a node that
// is down) live apart, in one key space per intended owner, until hinted
// hand-off delivers them. Reads see them too.
//
// Coordinate is where a node makes a new version: it gives the write the
// node's next dot for that key. Dots are numbered densely per key (what
// lets a causal context say "writes 1…n" in one number), from a counter
// kept per key in its own space that hand-off and reaping never delete:
// a node that handed a key away and coordinates it again continues its
// numbering instead of reusing a dot. The dot's node is the store's actor
// name, the node ID qualified by an incarnation drawn when the store is
// created, and again after any unclean stop and at every open with
// --sync none (where a crash may lose recent counters), so a node never
// issues one dot twice.
package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/ring"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// SyncMode is the durability of a write.
type SyncMode string

// The sync modes.
const (
	SyncAlways SyncMode = "always"
	SyncBatch  SyncMode = "batch"
	SyncNone   SyncMode = "none"
)

// ParseSyncMode reads --sync.
func ParseSyncMode(s string) (SyncMode, error) {
	switch SyncMode(s) {
	case SyncAlways, SyncBatch, SyncNone:
		return SyncMode(s), nil
	}
	return "", fmt.Errorf("store: --sync %q: want always, batch or none", s)
}

var (
	keyIncarnation = []byte("incarnation")
	keyRunning     = []byte("running") // present while open: absent after a clean Close
)

// Store is a node's versions, by key.
type Store struct {
	eng         engine
	incarnation string

	mu       sync.Mutex
	inflight map[string]uint64 // per storage key: the highest dot stamped and not yet committed
}

// Open opens (creating) the store at path: a file for bbolt, a directory
// for Pebble.
func Open(path string, eng Engine, sync SyncMode) (*Store, error) {
	var (
		e   engine
		err error
	)
	switch eng {
	case EngineBolt:
		e, err = openBolt(path, sync)
	case EnginePebble:
		e, err = openPebble(path, sync)
	default:
		return nil, fmt.Errorf("store: unknown engine %q", eng)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{eng: e, inflight: map[string]uint64{}}
	if err := e.update([][]byte{keyIncarnation}, func(w writer) error {
		// A store that was not closed cleanly (a crash: stamped dots may
		// not all have been committed), or one that does not fsync, comes
		// back as a new actor.
		running, err := w.get(spaceMeta, keyRunning)
		if err != nil {
			return err
		}
		raw, err := w.get(spaceMeta, keyIncarnation)
		if err != nil {
			return err
		}
		if raw != nil && running == nil && sync != SyncNone {
			s.incarnation = string(raw)
		} else {
			var r [3]byte
			_, _ = rand.Read(r[:])
			s.incarnation = hex.EncodeToString(r[:])
			if err := w.put(spaceMeta, keyIncarnation, []byte(s.incarnation)); err != nil {
				return err
			}
		}
		return w.put(spaceMeta, keyRunning, []byte{1})
	}); err != nil {
		e.close()
		return nil, fmt.Errorf("store: init: %w", err)
	}
	return s, nil
}

// Actor is the name this store's writes carry in their dots: the node ID
// and the store's incarnation.
func (s *Store) Actor(node string) string { return node + "." + s.incarnation }

// Close marks the store cleanly closed and closes the file.
func (s *Store) Close() error {
	err := s.eng.update([][]byte{keyRunning}, func(w writer) error { return w.delete(spaceMeta, keyRunning) })
	return errors.Join(err, s.eng.close())
}

func storageKey(key []byte) []byte {
	k := make([]byte, 8+len(key))
	binary.BigEndian.PutUint64(k, ring.KeyHash(key))
	copy(k[8:], key)
	return k
}

func decode(sk, raw []byte) ([]vclock.Version, error) {
	if raw == nil {
		return nil, nil
	}
	vs, err := vclock.UnmarshalVersions(raw)
	if err != nil {
		return nil, fmt.Errorf("store: key %x: %w", sk[8:], err)
	}
	return vs, nil
}

// read returns key's versions in sp.
func read(r reader, sp space, sk []byte) ([]vclock.Version, error) {
	raw, err := r.get(sp, sk)
	if err != nil {
		return nil, err
	}
	return decode(sk, raw)
}

func replicaSpace(hintFor string) space {
	if hintFor == "" {
		return spaceData
	}
	return hintSpace(hintFor)
}

// Get returns every version of key this node holds: its own replica and
// any it holds as hints for other nodes, reconciled (nil when absent).
func (s *Store) Get(key []byte) ([]vclock.Version, error) {
	var out []vclock.Version
	err := s.eng.view(func(r reader) error {
		sk := storageKey(key)
		var err error
		if out, err = read(r, spaceData, sk); err != nil {
			return err
		}
		targets, err := r.hintTargets()
		if err != nil {
			return err
		}
		for _, target := range targets {
			hinted, err := read(r, hintSpace(target), sk)
			if err != nil {
				return err
			}
			for _, v := range hinted {
				out = vclock.Reconcile(out, v)
			}
		}
		return nil
	})
	return out, err
}

// Write is a new write a coordinator makes.
type Write struct {
	Actor     string       // the dot's node: Store.Actor(node ID)
	Context   vclock.Clock // what the client had seen (already pruned)
	Value     []byte
	Tombstone bool
	HintFor   string // set when this node holds the replica for a node that is down
}

// Coordinate makes w a new version of key: Stamp, then Commit.
func (s *Store) Coordinate(key []byte, w Write, now time.Time) (vclock.Version, []vclock.Version, error) {
	made := vclock.Version{Dot: s.Stamp(key, w.Actor, w.Context, now), Context: w.Context, Value: w.Value, Tombstone: w.Tombstone}
	after, err := s.Commit(key, w.HintFor, made)
	return made, after, err
}

// Stamp gives a new write of key its dot: the actor's next counter for
// the key, above any committed or still in flight. It does not wait for a
// commit, so that the coordinator can send the version to the other
// replicas while its own copy is being written (Commit). A dot handed out
// whose commit a crash prevented is never reused: after an unclean stop
// the store comes back as a new actor.
func (s *Store) Stamp(key []byte, actor string, ctx vclock.Clock, now time.Time) vclock.Entry {
	sk := storageKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := max(s.issuedLocked(sk), ctx.Get(actor)) + 1
	s.inflight[string(sk)] = c
	return vclock.Entry{Node: actor, Counter: c, At: now.UnixMilli()}
}

// Issued is the highest counter this store has stamped for key, under any
// of its actors: every dot it ever issued for key is at or below it.
func (s *Store) Issued(key []byte) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuedLocked(storageKey(key))
}

// issuedLocked is the key's committed counter or the one in flight, if
// higher; s.mu is held.
func (s *Store) issuedLocked(sk []byte) uint64 {
	var stored uint64
	_ = s.eng.view(func(r reader) error {
		if raw, _ := r.get(spaceCounters, sk); len(raw) == 8 {
			stored = binary.BigEndian.Uint64(raw)
		}
		return nil
	})
	return max(stored, s.inflight[string(sk)])
}

// Commit stores a version made with Stamp into key's replica (or the hints
// for hintFor) and records its counter; it returns the versions stored.
func (s *Store) Commit(key []byte, hintFor string, made vclock.Version) ([]vclock.Version, error) {
	var after []vclock.Version
	sk := storageKey(key)
	sp := replicaSpace(hintFor)
	err := s.eng.update([][]byte{sk}, func(w writer) error {
		existing, err := read(w, sp, sk)
		if err != nil {
			return err
		}
		after = vclock.Reconcile(existing, made)
		if err := w.put(sp, sk, vclock.AppendVersions(nil, after)); err != nil {
			return err
		}
		raw, err := w.get(spaceCounters, sk)
		if err != nil || len(raw) == 8 && binary.BigEndian.Uint64(raw) >= made.Dot.Counter {
			return err
		}
		c := make([]byte, 8)
		binary.BigEndian.PutUint64(c, made.Dot.Counter)
		return w.put(spaceCounters, sk, c)
	})
	s.mu.Lock()
	if s.inflight[string(sk)] == made.Dot.Counter {
		delete(s.inflight, string(sk))
	}
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("store: commit: %w", err)
	}
	return after, nil
}

// Put reconciles versions into key's replica (or into the hints held for
// hintFor) and returns what is stored after.
func (s *Store) Put(key []byte, hintFor string, versions ...vclock.Version) ([]vclock.Version, error) {
	var after []vclock.Version
	sk, sp := storageKey(key), replicaSpace(hintFor)
	err := s.eng.update([][]byte{sk}, func(w writer) error {
		existing, err := read(w, sp, sk)
		if err != nil {
			return err
		}
		after = existing
		for _, v := range versions {
			after = vclock.Reconcile(after, v)
		}
		if len(existing) == len(after) && bytes.Equal(vclock.AppendVersions(nil, existing), vclock.AppendVersions(nil, after)) {
			return nil // nothing new: skip the write
		}
		return w.put(sp, sk, vclock.AppendVersions(nil, after))
	})
	if err != nil {
		return nil, fmt.Errorf("store: put: %w", err)
	}
	return after, nil
}

// Item is one replica write of a PutMany.
type Item struct {
	Key      []byte
	HintFor  string
	Versions []vclock.Version
}

// PutMany applies several replica writes in one transaction (one commit,
// one fsync): what a node does with a batch of replica writes a peer sent
// together.
func (s *Store) PutMany(items []Item) error {
	keys := make([][]byte, len(items))
	for i, it := range items {
		keys[i] = storageKey(it.Key)
	}
	err := s.eng.update(keys, func(w writer) error {
		for i, it := range items {
			sp := replicaSpace(it.HintFor)
			existing, err := read(w, sp, keys[i])
			if err != nil {
				return err
			}
			after := existing
			for _, v := range it.Versions {
				after = vclock.Reconcile(after, v)
			}
			if err := w.put(sp, keys[i], vclock.AppendVersions(nil, after)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put many: %w", err)
	}
	return nil
}

// Scan calls fn for every key of this node's replica whose ring hash is in
// (start, end], a range that wraps past zero when start ≥ end, in ring
// order. raw is the stored encoding, identical on replicas that hold the
// same versions; it is only valid during the call.
func (s *Store) Scan(start, end uint64, fn func(key, raw []byte) error) error {
	return s.eng.view(func(r reader) error {
		if start < end {
			return scan(r, start+1, end, fn)
		}
		if start != ^uint64(0) {
			if err := scan(r, start+1, ^uint64(0), fn); err != nil {
				return err
			}
		}
		return scan(r, 0, end, fn)
	})
}

// scan visits the keys with from ≤ hash ≤ to.
func scan(r reader, from, to uint64, fn func(key, raw []byte) error) error {
	var seek [8]byte
	binary.BigEndian.PutUint64(seek[:], from)
	return r.scan(spaceData, seek[:], func(k, raw []byte) (bool, error) {
		if binary.BigEndian.Uint64(k[:8]) > to {
			return false, nil
		}
		return true, fn(k[8:], raw)
	})
}

// HintTargets lists the nodes this node holds hints for.
func (s *Store) HintTargets() ([]string, error) {
	var out []string
	err := s.eng.view(func(r reader) error {
		var err error
		out, err = r.hintTargets()
		return err
	})
	return out, err
}

// Hints calls fn for up to limit hinted keys held for target.
func (s *Store) Hints(target string, limit int, fn func(key []byte, versions []vclock.Version) error) error {
	return s.eng.view(func(r reader) error {
		n := 0
		return r.scan(hintSpace(target), nil, func(k, raw []byte) (bool, error) {
			if n >= limit {
				return false, nil
			}
			vs, err := vclock.UnmarshalVersions(raw)
			if err != nil {
				return false, fmt.Errorf("store: hint %x: %w", k[8:], err)
			}
			n++
			return true, fn(append([]byte(nil), k[8:]...), vs)
		})
	})
}

// Forget deletes key from the replica (hintFor "") or from hintFor's hints,
// but only if what is stored is still exactly delivered: a write that
// arrived meanwhile is kept for the next round. It reports whether it
// deleted. Hinted hand-off and range hand-off call it once the data is
// safely elsewhere; reaping calls it for old tombstones.
func (s *Store) Forget(key []byte, hintFor string, delivered []vclock.Version) (bool, error) {
	deleted := false
	sk, sp := storageKey(key), replicaSpace(hintFor)
	err := s.eng.update([][]byte{sk}, func(w writer) error {
		deleted = false
		raw, err := w.get(sp, sk)
		if err != nil || raw == nil || !bytes.Equal(raw, vclock.AppendVersions(nil, delivered)) {
			return err
		}
		deleted = true
		return w.delete(sp, sk)
	})
	if err != nil {
		return false, fmt.Errorf("store: forget: %w", err)
	}
	return deleted, nil
}
