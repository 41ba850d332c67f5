package kv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

func put(key, value string, ifRev int64) Command {
	return Command{Op: OpPut, Key: []byte(key), Value: []byte(value), IfRevision: ifRev}
}

func TestRevisionsAndCompareAndSet(t *testing.T) {
	s := New()
	idx := uint64(0)
	apply := func(c Command) Result { idx++; return s.Apply(idx, c) }
	if r := apply(put("a", "1", Unconditional)); r.Status != Applied || r.Revision != 1 {
		t.Fatalf("first put: %+v", r)
	}
	if r := apply(put("a", "2", 0)); r.Status != Failed || r.Current != 1 {
		t.Fatalf("create-if-absent on an existing key: %+v", r)
	}
	if r := apply(put("b", "x", 0)); r.Status != Applied || r.Revision != 2 {
		t.Fatalf("create-if-absent: %+v", r)
	}
	if r := apply(put("a", "3", 2)); r.Status != Failed || r.Current != 1 || r.Revision != 2 {
		t.Fatalf("CAS with a wrong revision: %+v", r)
	}
	if r := apply(put("a", "3", 1)); r.Status != Applied || r.Revision != 3 {
		t.Fatalf("CAS: %+v", r)
	}
	if v, mod, ok := s.Get([]byte("a")); !ok || string(v) != "3" || mod != 3 {
		t.Fatalf("get a: %q %d %v", v, mod, ok)
	}
	if r := apply(Command{Op: OpDelete, Key: []byte("a"), IfRevision: 1}); r.Status != Failed || r.Current != 3 {
		t.Fatalf("conditional delete with a wrong revision: %+v", r)
	}
	if r := apply(Command{Op: OpDelete, Key: []byte("a"), IfRevision: 3}); r.Status != Applied || !r.Existed || r.Revision != 4 {
		t.Fatalf("delete: %+v", r)
	}
	if r := apply(Command{Op: OpDelete, Key: []byte("a"), IfRevision: Unconditional}); r.Status != Applied || r.Existed || r.Revision != 4 {
		t.Fatalf("delete of an absent key changes nothing: %+v", r)
	}
	if _, _, ok := s.Get([]byte("a")); ok {
		t.Fatal("deleted key still there")
	}
	// A replayed index changes nothing.
	if r := s.Apply(idx, put("z", "z", Unconditional)); r != (Result{}) || s.Len() != 1 {
		t.Fatalf("replay applied: %+v", r)
	}
}

// A retried write gets its first answer back and is not applied twice —
// even a compare-and-set, which would fail against its own success.
func TestRetriesAreAppliedOnce(t *testing.T) {
	s := New()
	cas := Command{Op: OpPut, Key: []byte("k"), Value: []byte("v"), IfRevision: 0, Client: 7, Seq: 1}
	first := s.Apply(1, cas)
	again := s.Apply(2, cas)
	if first.Status != Applied || again != first || s.Revision() != 1 {
		t.Fatalf("first %+v, retry %+v, revision %d", first, again, s.Revision())
	}
	next := Command{Op: OpPut, Key: []byte("k"), Value: []byte("w"), IfRevision: Unconditional, Client: 7, Seq: 2}
	if r := s.Apply(3, next); r.Status != Applied || r.Revision != 2 {
		t.Fatalf("next request: %+v", r)
	}
	if r := s.Apply(4, cas); r.Status != Stale || s.Revision() != 2 {
		t.Fatalf("a late copy of an older request: %+v", r)
	}
	// Other clients are independent.
	if r := s.Apply(5, Command{Op: OpPut, Key: []byte("k"), Value: []byte("x"), IfRevision: Unconditional, Client: 8, Seq: 1}); r.Status != Applied {
		t.Fatalf("another client: %+v", r)
	}
}

func TestSessionEviction(t *testing.T) {
	s := New()
	idx := uint64(0)
	for c := uint64(1); c <= MaxSessions+1; c++ {
		idx++
		s.Apply(idx, Command{Op: OpPut, Key: []byte("k"), IfRevision: Unconditional, Client: c, Seq: 1})
	}
	if len(s.sessions) != MaxSessions {
		t.Fatalf("%d sessions", len(s.sessions))
	}
	// Client 1, the least recently active, was evicted: its second request
	// is refused rather than risk applying a retry twice.
	idx++
	if r := s.Apply(idx, Command{Op: OpPut, Key: []byte("k"), IfRevision: Unconditional, Client: 1, Seq: 2}); r.Status != UnknownSession {
		t.Fatalf("evicted client: %+v", r)
	}
}

func randomCommand(rng *rand.Rand) Command {
	c := Command{Op: OpPut, Key: []byte(fmt.Sprint("k", rng.IntN(5))), Value: []byte(fmt.Sprint(rng.IntN(100))), IfRevision: Unconditional}
	if rng.IntN(4) == 0 {
		c.Op, c.Value = OpDelete, nil
	}
	if rng.IntN(3) == 0 {
		c.IfRevision = rng.Int64N(8)
	}
	if rng.IntN(2) == 0 {
		c.Client, c.Seq = 1+rng.Uint64N(3), 1+rng.Uint64N(6)
	}
	return c
}

// Replicas that apply the same log agree byte for byte, and a replica
// restored from a snapshot at any point and fed the rest of the log ends
// identical to one that applied it all.
func TestDeterminismAndSnapshots(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for round := 0; round < 200; round++ {
		var log []Command
		for i := 0; i < 60; i++ {
			log = append(log, randomCommand(rng))
		}
		a, b := New(), New()
		cut := rng.IntN(len(log))
		var snap []byte
		for i, c := range log {
			ra, rb := a.Apply(uint64(i+1), c), b.Apply(uint64(i+1), c)
			if ra != rb {
				t.Fatalf("round %d: results differ at %d", round, i)
			}
			if i == cut {
				snap = a.Snapshot()
			}
		}
		if !bytes.Equal(a.Snapshot(), b.Snapshot()) {
			t.Fatalf("round %d: replicas differ", round)
		}
		clone := a.Clone()
		a.Apply(uint64(len(log)+1), put("after-clone", "x", Unconditional))
		if !bytes.Equal(clone.Snapshot(), b.Snapshot()) {
			t.Fatalf("round %d: a clone changed with its original", round)
		}
		c, err := Restore(snap)
		if err != nil {
			t.Fatal(err)
		}
		for i := cut + 1; i < len(log); i++ {
			c.Apply(uint64(i+1), log[i])
		}
		if !bytes.Equal(c.Snapshot(), b.Snapshot()) {
			t.Fatalf("round %d: restored at %d and replayed, the state differs", round, cut)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(put("k", "v", 3).Encode())
	f.Add(Command{Op: OpDelete, Key: []byte{0, 255}, IfRevision: Unconditional, Client: 9, Seq: 4}.Encode())
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := Decode(raw)
		if err != nil {
			return
		}
		back, err := Decode(c.Encode())
		if err != nil || !bytes.Equal(back.Encode(), c.Encode()) {
			t.Fatalf("%x decodes to %+v, which does not round-trip", raw, c)
		}
	})
}

func FuzzRestore(f *testing.F) {
	s := New()
	s.Apply(1, Command{Op: OpPut, Key: []byte("k"), Value: []byte("v"), IfRevision: Unconditional, Client: 1, Seq: 1})
	f.Add(s.Snapshot())
	f.Add([]byte{})
	f.Add([]byte("not a snapshot"))
	// Whatever the bytes: Restore refuses them, or gives a store whose
	// snapshot restores to the same store (the encoding is canonical) and
	// that goes on taking writes at the next index.
	f.Fuzz(func(t *testing.T, raw []byte) {
		st, err := Restore(raw)
		if err != nil {
			return
		}
		snap := st.Snapshot()
		again, err := Restore(snap)
		if err != nil {
			t.Fatalf("a restored store's own snapshot does not restore: %v", err)
		}
		if !bytes.Equal(again.Snapshot(), snap) || again.Applied() != st.Applied() || again.Revision() != st.Revision() || again.Len() != st.Len() {
			t.Fatalf("snapshot → restore → snapshot changed the store (applied %d→%d, revision %d→%d, keys %d→%d)",
				st.Applied(), again.Applied(), st.Revision(), again.Revision(), st.Len(), again.Len())
		}
		r := again.Apply(again.Applied()+1, Command{Op: OpPut, Key: []byte("after-restore"), Value: []byte("v"), IfRevision: Unconditional})
		if r.Status != Applied || r.Revision <= st.Revision() {
			t.Fatalf("a write after restoring: %+v (revision was %d)", r, st.Revision())
		}
		if v, _, ok := again.Get([]byte("after-restore")); !ok || string(v) != "v" {
			t.Fatalf("the write after restoring is not readable: %q %v", v, ok)
		}
	})
}
