// Package store is one Dynamo node's durable storage: for each key, the set
// of versions that survived reconciliation (vclock.Reconcile), in a bbolt
// B-tree file. Every write reads the stored versions, reconciles the
// incoming ones into them and writes the result in one transaction, so
// concurrent writes to a key on one node serialise and never lose a version.
//
// Durability follows --sync:
//
//	always  each write commits and fsyncs before it returns (an acknowledged write survives a crash)
//	batch   writes from concurrent callers share one commit and fsync (bbolt's Batch): the
//	        same guarantee per acknowledged write, with fewer fsyncs under load
//	none    commits without fsync: fastest, a crash can lose recent writes
//
// Keys are stored under their ring hash (big-endian) followed by the key,
// so that a key range of the ring is a contiguous cursor scan: the unit of
// Merkle-tree anti-entropy and of range hand-off.
//
// Hinted writes (sloppy quorum: this node holds a replica for a node that
// is down) live apart, in one bucket per intended owner, until hinted
// hand-off delivers them. Reads see them too.
//
// Coordinate is where a node makes a new version: it gives the write the
// node's next dot for that key. Dots are numbered densely per key (what
// lets a causal context say "writes 1…n" in one number), from a counter
// kept per key in its own bucket that hand-off and reaping never delete:
// a node that handed a key away and coordinates it again continues its
// numbering instead of reusing a dot. The dot's node is the store's actor
// name, the node ID qualified by an incarnation drawn when the file is
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

	bolt "go.etcd.io/bbolt"

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
	bucketData     = []byte("data")
	bucketHints    = []byte("hints")
	bucketMeta     = []byte("meta")
	bucketCounters = []byte("counters")
	keyIncarnation = []byte("incarnation")
	keyRunning     = []byte("running") // present while open: absent after a clean Close
)

// Store is a node's versions, by key.
type Store struct {
	db          *bolt.DB
	sync        SyncMode
	incarnation string

	mu       sync.Mutex
	inflight map[string]uint64 // per storage key: the highest dot stamped and not yet committed
}

// Open opens (creating) the store file at path.
func Open(path string, sync SyncMode) (*Store, error) {
	// As etcd does: the freelist is rebuilt at open instead of written at
	// every commit (a commit writes only the pages it changed), kept as a
	// map (fast with many free pages), and the file is mapped large enough
	// up front that growth does not stall writers on a remap.
	db, err := bolt.Open(path, 0o644, &bolt.Options{
		Timeout: 5 * time.Second, NoSync: sync == SyncNone,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType, InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if sync == SyncBatch {
		db.MaxBatchDelay = 2 * time.Millisecond
	}
	s := &Store{db: db, sync: sync, inflight: map[string]uint64{}}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketData, bucketHints, bucketMeta, bucketCounters} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		// A store that was not closed cleanly (a crash: stamped dots may
		// not all have been committed), or one that does not fsync, comes
		// back as a new actor.
		clean := meta.Get(keyRunning) == nil
		if raw := meta.Get(keyIncarnation); raw != nil && clean && sync != SyncNone {
			s.incarnation = string(raw)
		} else {
			var r [3]byte
			_, _ = rand.Read(r[:])
			s.incarnation = hex.EncodeToString(r[:])
			if err := meta.Put(keyIncarnation, []byte(s.incarnation)); err != nil {
				return err
			}
		}
		return meta.Put(keyRunning, []byte{1})
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: init: %w", err)
	}
	return s, nil
}

// Actor is the name this store's writes carry in their dots: the node ID
// and the store's incarnation.
func (s *Store) Actor(node string) string { return node + "." + s.incarnation }

// Close marks the store cleanly closed and closes the file.
func (s *Store) Close() error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyRunning) })
	return errors.Join(err, s.db.Close())
}

func storageKey(key []byte) []byte {
	k := make([]byte, 8+len(key))
	binary.BigEndian.PutUint64(k, ring.KeyHash(key))
	copy(k[8:], key)
	return k
}

func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	if s.sync == SyncBatch {
		return s.db.Batch(fn)
	}
	return s.db.Update(fn)
}

// bucket returns the data bucket, or hintFor's hint bucket (created when
// create is set; nil when it does not exist).
func bucket(tx *bolt.Tx, hintFor string, create bool) (*bolt.Bucket, error) {
	if hintFor == "" {
		return tx.Bucket(bucketData), nil
	}
	hints := tx.Bucket(bucketHints)
	if b := hints.Bucket([]byte(hintFor)); b != nil || !create {
		return b, nil
	}
	return hints.CreateBucket([]byte(hintFor))
}

func read(b *bolt.Bucket, sk []byte) ([]vclock.Version, error) {
	if b == nil {
		return nil, nil
	}
	raw := b.Get(sk)
	if raw == nil {
		return nil, nil
	}
	vs, err := vclock.UnmarshalVersions(raw)
	if err != nil {
		return nil, fmt.Errorf("store: key %x: %w", sk[8:], err)
	}
	return vs, nil
}

// Get returns every version of key this node holds: its own replica and
// any it holds as hints for other nodes, reconciled (nil when absent).
func (s *Store) Get(key []byte) ([]vclock.Version, error) {
	var out []vclock.Version
	err := s.db.View(func(tx *bolt.Tx) error {
		sk := storageKey(key)
		var err error
		if out, err = read(tx.Bucket(bucketData), sk); err != nil {
			return err
		}
		return tx.Bucket(bucketHints).ForEachBucket(func(target []byte) error {
			hinted, err := read(tx.Bucket(bucketHints).Bucket(target), sk)
			for _, v := range hinted {
				out = vclock.Reconcile(out, v)
			}
			return err
		})
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
	_ = s.db.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketCounters).Get(sk); len(raw) == 8 {
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
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, hintFor, true)
		if err != nil {
			return err
		}
		existing, err := read(b, sk)
		if err != nil {
			return err
		}
		after = vclock.Reconcile(existing, made)
		if err := b.Put(sk, vclock.AppendVersions(nil, after)); err != nil {
			return err
		}
		counters := tx.Bucket(bucketCounters)
		if raw := counters.Get(sk); len(raw) == 8 && binary.BigEndian.Uint64(raw) >= made.Dot.Counter {
			return nil
		}
		c := make([]byte, 8)
		binary.BigEndian.PutUint64(c, made.Dot.Counter)
		return counters.Put(sk, c)
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
	err := s.update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, hintFor, true)
		if err != nil {
			return err
		}
		sk := storageKey(key)
		existing, err := read(b, sk)
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
		return b.Put(sk, vclock.AppendVersions(nil, after))
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
	err := s.update(func(tx *bolt.Tx) error {
		for _, it := range items {
			b, err := bucket(tx, it.HintFor, true)
			if err != nil {
				return err
			}
			sk := storageKey(it.Key)
			existing, err := read(b, sk)
			if err != nil {
				return err
			}
			after := existing
			for _, v := range it.Versions {
				after = vclock.Reconcile(after, v)
			}
			if err := b.Put(sk, vclock.AppendVersions(nil, after)); err != nil {
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
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketData).Cursor()
		if start < end {
			return scan(c, start+1, end, fn)
		}
		if start != ^uint64(0) {
			if err := scan(c, start+1, ^uint64(0), fn); err != nil {
				return err
			}
		}
		return scan(c, 0, end, fn)
	})
}

// scan visits the keys with from ≤ hash ≤ to.
func scan(c *bolt.Cursor, from, to uint64, fn func(key, raw []byte) error) error {
	var seek [8]byte
	binary.BigEndian.PutUint64(seek[:], from)
	for k, raw := c.Seek(seek[:]); k != nil && binary.BigEndian.Uint64(k[:8]) <= to; k, raw = c.Next() {
		if err := fn(k[8:], raw); err != nil {
			return err
		}
	}
	return nil
}

// HintTargets lists the nodes this node holds hints for.
func (s *Store) HintTargets() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHints).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// Hints calls fn for up to limit hinted keys held for target.
func (s *Store) Hints(target string, limit int, fn func(key []byte, versions []vclock.Version) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHints).Bucket([]byte(target))
		if b == nil {
			return nil
		}
		n := 0
		c := b.Cursor()
		for k, raw := c.First(); k != nil && n < limit; k, raw = c.Next() {
			vs, err := vclock.UnmarshalVersions(raw)
			if err != nil {
				return fmt.Errorf("store: hint %x: %w", k[8:], err)
			}
			if err := fn(append([]byte(nil), k[8:]...), vs); err != nil {
				return err
			}
			n++
		}
		return nil
	})
}

// Forget deletes key from the replica (hintFor "") or from hintFor's hints,
// but only if what is stored is still exactly delivered: a write that
// arrived meanwhile is kept for the next round. It reports whether it
// deleted. Hinted hand-off and range hand-off call it once the data is
// safely elsewhere; reaping calls it for old tombstones.
func (s *Store) Forget(key []byte, hintFor string, delivered []vclock.Version) (bool, error) {
	deleted := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := bucket(tx, hintFor, false)
		if b == nil || err != nil {
			return err
		}
		sk := storageKey(key)
		raw := b.Get(sk)
		if raw == nil || !bytes.Equal(raw, vclock.AppendVersions(nil, delivered)) {
			return nil
		}
		if err := b.Delete(sk); err != nil {
			return err
		}
		deleted = true
		if k, _ := b.Cursor().First(); hintFor != "" && k == nil {
			return tx.Bucket(bucketHints).DeleteBucket([]byte(hintFor))
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: forget: %w", err)
	}
	return deleted, nil
}
