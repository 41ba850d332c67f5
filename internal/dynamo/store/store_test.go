package store

import (
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/ring"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustOpen(t *testing.T, path string, mode SyncMode) *Store {
	t.Helper()
	s, err := Open(path, mode)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutGetSiblingsAndRestart(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncBatch, SyncNone} {
		t.Run(string(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.db")
			s := mustOpen(t, path, mode)
			var base vclock.Clock
			a := vclock.Version{Clock: base.Increment("n1", t0), Value: []byte("from n1")}
			b := vclock.Version{Clock: base.Increment("n2", t0), Value: []byte{0, 1, 2, 255}} // binary-safe
			if _, err := s.Put([]byte("k"), a); err != nil {
				t.Fatal(err)
			}
			after, err := s.Put([]byte("k"), b)
			if err != nil || len(after) != 2 {
				t.Fatalf("concurrent writes: %d versions, %v", len(after), err)
			}
			merged := vclock.Version{Clock: vclock.Merge(a.Clock, b.Clock).Increment("n1", t0), Value: []byte("resolved")}
			if after, _ = s.Put([]byte("k"), merged); len(after) != 1 {
				t.Fatalf("resolving write left %d versions", len(after))
			}
			tomb := vclock.Version{Clock: merged.Clock.Increment("n3", t0), Tombstone: true}
			if _, err := s.Put([]byte("gone"), tomb); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, path, mode) // a restarted node keeps its data
			defer s.Close()
			got, err := s.Get([]byte("k"))
			if err != nil || len(got) != 1 || string(got[0].Value) != "resolved" || vclock.Compare(got[0].Clock, merged.Clock) != vclock.Equal {
				t.Fatalf("after restart: %+v %v", got, err)
			}
			if g, _ := s.Get([]byte("gone")); len(g) != 1 || !g[0].Tombstone {
				t.Fatalf("tombstone after restart: %+v", g)
			}
			if g, err := s.Get([]byte("absent")); g != nil || err != nil {
				t.Fatalf("absent key: %v %v", g, err)
			}
		})
	}
}

// Concurrent writers to one key on one node: every write that is
// concurrent with the others survives as a sibling, none is lost.
func TestConcurrentPutsLoseNothing(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "n.db"), SyncBatch)
	defer s.Close()
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var c vclock.Clock
			if _, err := s.Put([]byte("hot"), vclock.Version{Clock: c.Increment(fmt.Sprint("w", i), t0), Value: []byte(fmt.Sprint(i))}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	got, _ := s.Get([]byte("hot"))
	if len(got) != 32 {
		t.Fatalf("%d of 32 concurrent writes survived", len(got))
	}
}

// Scan visits exactly the keys of a ring range, including ranges that
// wrap past zero: the ranges of a ring partition the keys.
func TestScanRanges(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "n.db"), SyncNone)
	defer s.Close()
	var c vclock.Clock
	const n = 500
	for i := 0; i < n; i++ {
		if _, err := s.Put([]byte(fmt.Sprint("key-", i)), vclock.Version{Clock: c.Increment("n1", t0), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := ring.New([]string{"a", "b", "c"}, 8)
	seen := map[string]int{}
	for _, rg := range r.Ranges(1) {
		var prev uint64
		first := true
		err := s.Scan(rg.Start, rg.End, func(key []byte, vs []vclock.Version) error {
			h := ring.KeyHash(key)
			in := rg.Start < rg.End && h > rg.Start && h <= rg.End || rg.Start >= rg.End && (h > rg.Start || h <= rg.End)
			if !in {
				t.Fatalf("%q (hash %d) outside (%d, %d]", key, h, rg.Start, rg.End)
			}
			if !first && h < prev && rg.Start < rg.End {
				t.Fatal("not in ring order")
			}
			prev, first = h, false
			seen[string(key)]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != n {
		t.Fatalf("ranges covered %d of %d keys", len(seen), n)
	}
	var dup []string
	for k, c := range seen {
		if c != 1 {
			dup = append(dup, k)
		}
	}
	sort.Strings(dup)
	if len(dup) > 0 {
		t.Fatalf("keys in more than one range: %v", dup)
	}
}

func TestSyncModeAndCorruption(t *testing.T) {
	if _, err := ParseSyncMode("sometimes"); err == nil {
		t.Fatal("bad sync mode accepted")
	}
	for _, bad := range [][]byte{{}, {5}, {1, 200}, append(encodeVersions(nil), 9)} {
		if _, err := decodeVersions(bad); err == nil {
			t.Errorf("decodeVersions(%v) accepted", bad)
		}
	}
}
