// Package store is one Dynamo node's durable storage: for each key, the set
// of versions that survived reconciliation (vclock.Reconcile), in a bbolt
// B-tree file. Every Put reads the stored versions, reconciles the incoming
// one into them and writes the result in one transaction, so concurrent
// writes to a key on one node serialise and never lose a version.
//
// Durability follows --sync:
//
//	always  each Put commits and fsyncs before it returns (an acknowledged write survives a crash)
//	batch   Puts from concurrent callers share one commit and fsync (bbolt's Batch): the
//	        same guarantee per acknowledged write, with fewer fsyncs under load
//	none    commits without fsync: fastest, a crash can lose recent writes
//
// Keys are stored under their ring hash (big-endian) followed by the key,
// so that a key range of the ring is a contiguous cursor scan: the unit of
// Merkle-tree anti-entropy and of range hand-off.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scalelab/scalelab/internal/dynamo/ring"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// SyncMode is the durability of a Put.
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

var bucketData = []byte("data")

// Store is a node's versions, by key.
type Store struct {
	db   *bolt.DB
	sync SyncMode
}

// Open opens (creating) the store file at path.
func Open(path string, sync SyncMode) (*Store, error) {
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 5 * time.Second, NoSync: sync == SyncNone})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if sync == SyncBatch {
		db.MaxBatchDelay = 2 * time.Millisecond
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketData)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: init: %w", err)
	}
	return &Store{db: db, sync: sync}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func storageKey(key []byte) []byte {
	k := make([]byte, 8+len(key))
	binary.BigEndian.PutUint64(k, ring.KeyHash(key))
	copy(k[8:], key)
	return k
}

// Get returns the stored versions of key (nil when absent).
func (s *Store) Get(key []byte) ([]vclock.Version, error) {
	var out []vclock.Version
	err := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketData).Get(storageKey(key))
		if raw == nil {
			return nil
		}
		var err error
		out, err = decodeVersions(raw)
		return err
	})
	return out, err
}

// Put reconciles v into key's versions and returns what is stored after.
func (s *Store) Put(key []byte, v vclock.Version) ([]vclock.Version, error) {
	var after []vclock.Version
	update := func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketData)
		sk := storageKey(key)
		var existing []vclock.Version
		if raw := b.Get(sk); raw != nil {
			var err error
			if existing, err = decodeVersions(raw); err != nil {
				return err
			}
		}
		after = vclock.Reconcile(existing, v)
		return b.Put(sk, encodeVersions(after))
	}
	var err error
	if s.sync == SyncBatch {
		err = s.db.Batch(update)
	} else {
		err = s.db.Update(update)
	}
	if err != nil {
		return nil, fmt.Errorf("store: put: %w", err)
	}
	return after, nil
}

// Scan calls fn for every key whose ring hash is in (start, end], a range
// that wraps past zero when start ≥ end, in ring order.
func (s *Store) Scan(start, end uint64, fn func(key []byte, versions []vclock.Version) error) error {
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
func scan(c *bolt.Cursor, from, to uint64, fn func([]byte, []vclock.Version) error) error {
	var seek [8]byte
	binary.BigEndian.PutUint64(seek[:], from)
	for k, raw := c.Seek(seek[:]); k != nil && binary.BigEndian.Uint64(k[:8]) <= to; k, raw = c.Next() {
		vs, err := decodeVersions(raw)
		if err != nil {
			return err
		}
		if err := fn(append([]byte(nil), k[8:]...), vs); err != nil {
			return err
		}
	}
	return nil
}

// Encoding of a version set: count, then per version the clock (length-
// prefixed vclock binary), a tombstone flag and the length-prefixed value.
func encodeVersions(vs []vclock.Version) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		c := v.Clock.MarshalBinary()
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
		if v.Tombstone {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(len(v.Value)))
		b = append(b, v.Value...)
	}
	return b
}

var errCorrupt = errors.New("store: corrupt version record")

func decodeVersions(raw []byte) ([]vclock.Version, error) {
	r := bytes.NewReader(raw)
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1<<16 {
		return nil, errCorrupt
	}
	out := make([]vclock.Version, 0, n)
	for i := uint64(0); i < n; i++ {
		cl, err := binary.ReadUvarint(r)
		if err != nil || cl > uint64(r.Len()) {
			return nil, errCorrupt
		}
		cb := make([]byte, cl)
		_, _ = r.Read(cb)
		clock, err := vclock.Unmarshal(cb)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errCorrupt, err)
		}
		flag, err := r.ReadByte()
		if err != nil || flag > 1 {
			return nil, errCorrupt
		}
		vl, err := binary.ReadUvarint(r)
		if err != nil || vl > uint64(r.Len()) {
			return nil, errCorrupt
		}
		val := make([]byte, vl)
		_, _ = r.Read(val)
		out = append(out, vclock.Version{Clock: clock, Value: val, Tombstone: flag == 1})
	}
	if r.Len() != 0 {
		return nil, errCorrupt
	}
	return out, nil
}
