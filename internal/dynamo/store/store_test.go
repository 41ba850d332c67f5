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

var engines = []Engine{EngineBolt, EnginePebble}

// eachEngine runs test once per engine: the store must behave the same on
// every one.
func eachEngine(t *testing.T, test func(t *testing.T, eng Engine)) {
	for _, eng := range engines {
		t.Run(string(eng), func(t *testing.T) { test(t, eng) })
	}
}

func mustOpen(t *testing.T, path string, eng Engine, mode SyncMode) *Store {
	t.Helper()
	s, err := Open(path, eng, mode)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func coord(t *testing.T, s *Store, key, actor, value string, ctx vclock.Clock) (vclock.Version, []vclock.Version) {
	t.Helper()
	v, after, err := s.Coordinate([]byte(key), Write{Actor: actor, Context: ctx, Value: []byte(value)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return v, after
}

func TestCoordinateSiblingsAndRestart(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng Engine) {
		for _, mode := range []SyncMode{SyncAlways, SyncBatch, SyncNone} {
			t.Run(string(mode), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "node.db")
				s := mustOpen(t, path, eng, mode)
				a, _ := coord(t, s, "k", "n1", "from n1", nil)
				b, after := coord(t, s, "k", "n1", string([]byte{0, 1, 2, 255}), nil) // a blind write: a sibling
				if len(after) != 2 || b.Dot.Counter <= a.Dot.Counter {
					t.Fatalf("blind writes: %d versions, dots %v %v", len(after), a.Dot, b.Dot)
				}
				// A replica write from another coordinator reconciles the same way.
				other := vclock.Version{Dot: vclock.Entry{Node: "n2", Counter: 1}, Value: []byte("from n2")}
				if after, _ = s.Put([]byte("k"), "", other); len(after) != 3 {
					t.Fatalf("third sibling: %d versions", len(after))
				}
				resolved, after := coord(t, s, "k", "n1", "resolved", vclock.Context(after))
				if len(after) != 1 {
					t.Fatalf("resolving write left %d versions", len(after))
				}
				tomb, _, err := s.Coordinate([]byte("gone"), Write{Actor: "n3", Tombstone: true}, t0)
				if err != nil || !tomb.Tombstone {
					t.Fatal(err)
				}
				actor := s.Actor("n1")
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s = mustOpen(t, path, eng, mode) // a restarted node keeps its data
				defer s.Close()
				got, err := s.Get([]byte("k"))
				if err != nil || len(got) != 1 || string(got[0].Value) != "resolved" || !vclock.SameEvent(got[0], resolved) {
					t.Fatalf("after restart: %+v %v", got, err)
				}
				if g, _ := s.Get([]byte("gone")); len(g) != 1 || !g[0].Tombstone {
					t.Fatalf("tombstone after restart: %+v", g)
				}
				if g, err := s.Get([]byte("absent")); g != nil || err != nil {
					t.Fatalf("absent key: %v %v", g, err)
				}
				// A restart keeps the actor name, except with --sync none, where
				// a crash may have lost counters: then the node is a new actor.
				if again := s.Actor("n1"); (again == actor) != (mode != SyncNone) {
					t.Fatalf("actor %s before the restart, %s after (sync %s)", actor, again, mode)
				}
				// Counters continue per key: k had writes 1–3.
				if next, _ := coord(t, s, "k", "n1", "x", nil); mode != SyncNone && next.Dot.Counter != 4 {
					t.Fatalf("next dot %v", next.Dot)
				}
			})
		}
	})
}

// Hinted writes are kept apart per intended owner, seen by reads, listed
// for hand-off and forgotten only while unchanged.
func TestHints(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng Engine) {
		path := filepath.Join(t.TempDir(), "n.db")
		s := mustOpen(t, path, eng, SyncAlways)
		v, _, err := s.Coordinate([]byte("k"), Write{Actor: "n4", Value: []byte("hinted"), HintFor: "n2"}, t0)
		if err != nil {
			t.Fatal(err)
		}
		// Hints, and the list of their owners, survive a restart.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = mustOpen(t, path, eng, SyncAlways)
		defer func() { s.Close() }()
		if got, _ := s.Get([]byte("k")); len(got) != 1 || !vclock.SameEvent(got[0], v) {
			t.Fatalf("read does not see the hint: %+v", got)
		}
		if targets, _ := s.HintTargets(); fmt.Sprint(targets) != "[n2]" {
			t.Fatalf("targets %v", targets)
		}
		var held []vclock.Version
		_ = s.Hints("n2", 10, func(key []byte, vs []vclock.Version) error { held = vs; return nil })
		// A write arriving between delivery and deletion keeps the hint.
		late := vclock.Version{Dot: vclock.Entry{Node: "n5", Counter: 1}, Value: []byte("late")}
		if _, err := s.Put([]byte("k"), "n2", late); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.Forget([]byte("k"), "n2", held); ok {
			t.Fatal("forgot a hint that changed after delivery")
		}
		_ = s.Hints("n2", 10, func(key []byte, vs []vclock.Version) error { held = vs; return nil })
		if ok, err := s.Forget([]byte("k"), "n2", held); !ok || err != nil {
			t.Fatalf("forget: %v %v", ok, err)
		}
		if targets, _ := s.HintTargets(); len(targets) != 0 {
			t.Fatalf("empty hint bucket kept: %v", targets)
		}
		if got, _ := s.Get([]byte("k")); len(got) != 0 {
			t.Fatalf("after hand-off: %+v", got)
		}
	})
}

// Concurrent blind writers to one key on one node: every write survives
// as a sibling, none is lost, and no two share a dot.
func TestConcurrentWritesLoseNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng Engine) {
		s := mustOpen(t, filepath.Join(t.TempDir(), "n.db"), eng, SyncBatch)
		defer s.Close()
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if _, _, err := s.Coordinate([]byte("hot"), Write{Actor: "n1", Value: []byte(fmt.Sprint(i))}, t0); err != nil {
					t.Error(err)
				}
			}(i)
		}
		wg.Wait()
		got, _ := s.Get([]byte("hot"))
		if len(got) != 32 {
			t.Fatalf("%d of 32 concurrent writes survived", len(got))
		}
	})
}

// Scan visits exactly the keys of a ring range, including ranges that
// wrap past zero: the ranges of a ring partition the keys.
func TestScanRanges(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng Engine) {
		s := mustOpen(t, filepath.Join(t.TempDir(), "n.db"), eng, SyncNone)
		defer s.Close()
		const n = 500
		for i := 0; i < n; i++ {
			coord(t, s, fmt.Sprint("key-", i), "n1", "v", nil)
		}
		r, _ := ring.New([]string{"a", "b", "c"}, 8)
		seen := map[string]int{}
		for _, rg := range r.Ranges(1) {
			var prev uint64
			first := true
			err := s.Scan(rg.Start, rg.End, func(key, raw []byte) error {
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
	})
}

func TestSyncModeAndCorruption(t *testing.T) {
	if _, err := ParseSyncMode("sometimes"); err == nil {
		t.Fatal("bad sync mode accepted")
	}
	for _, bad := range [][]byte{{}, {5}, {1, 200}, append(vclock.AppendVersions(nil, nil), 9)} {
		if _, err := vclock.UnmarshalVersions(bad); err == nil {
			t.Errorf("UnmarshalVersions(%v) accepted", bad)
		}
	}
}
