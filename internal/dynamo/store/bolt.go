package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltEngine keeps each space in a bucket (the hints in one nested bucket
// per intended owner, deleted when it empties), in one file.
type boltEngine struct {
	db    *bolt.DB
	batch bool
}

var (
	bucketData     = []byte("data")
	bucketHints    = []byte("hints")
	bucketMeta     = []byte("meta")
	bucketCounters = []byte("counters")
)

func openBolt(path string, sync SyncMode) (*boltEngine, error) {
	// As etcd does: the freelist is rebuilt at open instead of written at
	// every commit (a commit writes only the pages it changed), kept as a
	// map (fast with many free pages), and the file is mapped large enough
	// up front that growth does not stall writers on a remap.
	db, err := bolt.Open(path, 0o644, &bolt.Options{
		Timeout: 5 * time.Second, NoSync: sync == SyncNone,
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType, InitialMmapSize: 1 << 30,
	})
	if err != nil {
		return nil, err
	}
	if sync == SyncBatch {
		db.MaxBatchDelay = 2 * time.Millisecond
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketData, bucketHints, bucketMeta, bucketCounters} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	return &boltEngine{db: db, batch: sync == SyncBatch}, nil
}

func (e *boltEngine) view(fn func(r reader) error) error {
	return e.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

// update ignores locks: bbolt has one writer at a time.
func (e *boltEngine) update(_ [][]byte, fn func(w writer) error) error {
	run := func(tx *bolt.Tx) error { return fn(boltTx{tx}) }
	if e.batch {
		return e.db.Batch(run)
	}
	return e.db.Update(run)
}

func (e *boltEngine) close() error { return e.db.Close() }

type boltTx struct{ tx *bolt.Tx }

// bucket returns sp's bucket; a hint bucket is created when create is set
// and is nil when it does not exist.
func (t boltTx) bucket(sp space, create bool) (*bolt.Bucket, error) {
	switch sp.kind {
	case 'd':
		return t.tx.Bucket(bucketData), nil
	case 'c':
		return t.tx.Bucket(bucketCounters), nil
	case 'm':
		return t.tx.Bucket(bucketMeta), nil
	}
	hints := t.tx.Bucket(bucketHints)
	if b := hints.Bucket([]byte(sp.hint)); b != nil || !create {
		return b, nil
	}
	return hints.CreateBucket([]byte(sp.hint))
}

func (t boltTx) get(sp space, key []byte) ([]byte, error) {
	b, err := t.bucket(sp, false)
	if b == nil || err != nil {
		return nil, err
	}
	return b.Get(key), nil
}

func (t boltTx) scan(sp space, from []byte, fn func(key, value []byte) (bool, error)) error {
	b, err := t.bucket(sp, false)
	if b == nil || err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.Seek(from); k != nil; k, v = c.Next() {
		if more, err := fn(k, v); !more || err != nil {
			return err
		}
	}
	return nil
}

func (t boltTx) hintTargets() ([]string, error) {
	var out []string
	err := t.tx.Bucket(bucketHints).ForEachBucket(func(k []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}

func (t boltTx) put(sp space, key, value []byte) error {
	b, err := t.bucket(sp, true)
	if err != nil {
		return err
	}
	return b.Put(key, value)
}

func (t boltTx) delete(sp space, key []byte) error {
	b, err := t.bucket(sp, false)
	if b == nil || err != nil {
		return err
	}
	if err := b.Delete(key); err != nil {
		return err
	}
	if k, _ := b.Cursor().First(); sp.kind == 'h' && k == nil {
		return t.tx.Bucket(bucketHints).DeleteBucket([]byte(sp.hint))
	}
	return nil
}
