package wal

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func ents(term uint64, from, to uint64) []raftpb.Entry {
	var out []raftpb.Entry
	for i := from; i <= to; i++ {
		out = append(out, raftpb.Entry{Term: term, Index: i, Type: raftpb.EntryNormal, Data: []byte{byte(i), byte(term)}})
	}
	return out
}

func mustOpen(t *testing.T, dir string) (*WAL, State) {
	t.Helper()
	w, st, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return w, st
}

func TestSaveReopenAndTruncation(t *testing.T) {
	dir := t.TempDir()
	if Exists(dir) {
		t.Fatal("an empty dir has a log")
	}
	w, st := mustOpen(t, dir)
	if len(st.Entries) != 0 || !raftEmpty(st.HardState) {
		t.Fatalf("fresh state %+v", st)
	}
	hs := raftpb.HardState{Term: 1, Vote: 2, Commit: 3}
	if err := w.Save(hs, ents(1, 1, 5)); err != nil {
		t.Fatal(err)
	}
	// A new leader overwrites the uncommitted tail from index 4.
	if err := w.Save(raftpb.HardState{Term: 2, Vote: 3, Commit: 3}, ents(2, 4, 6)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, st = mustOpen(t, dir)
	defer w.Close()
	want := append(ents(1, 1, 3), ents(2, 4, 6)...)
	if !reflect.DeepEqual(st.Entries, want) || st.HardState.Term != 2 || st.HardState.Commit != 3 {
		t.Fatalf("recovered %+v", st)
	}
	if !Exists(dir) {
		t.Fatal("Exists")
	}
}

// A crash in the middle of a write leaves a torn record: recovery keeps
// every record before it, whatever byte the write stopped at.
func TestTornTailIsCut(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	w, _ := mustOpen(t, src)
	if err := w.Save(raftpb.HardState{Term: 1, Commit: 2}, ents(1, 1, 2)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	segs, _ := segments(src)
	seg := filepath.Join(src, segName(segs[len(segs)-1]))
	full, _ := os.ReadFile(seg)
	w, _ = mustOpen(t, src) // a new segment
	if err := w.Save(raftpb.HardState{}, ents(1, 3, 3)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	segs, _ = segments(src)
	lastSeg := filepath.Join(src, segName(segs[len(segs)-1]))
	last, _ := os.ReadFile(lastSeg)
	for cut := 0; cut < len(last); cut++ {
		dir := filepath.Join(base, "cut")
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, filepath.Base(seg)), full, 0o644)
		os.WriteFile(filepath.Join(dir, filepath.Base(lastSeg)), last[:cut], 0o644)
		w, st, err := Open(dir, false)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if n := len(st.Entries); n != 2 && n != 3 || n == 3 && cut < len(last) {
			t.Fatalf("cut at %d of %d: %d entries", cut, len(last), n)
		}
		// The log stays appendable after the cut.
		if err := w.Save(raftpb.HardState{}, ents(1, 3, 3)); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	// Corruption in an older segment is an error, not a silent cut.
	dir := filepath.Join(base, "corrupt")
	os.MkdirAll(dir, 0o755)
	bad := append([]byte(nil), full...)
	bad[12] ^= 0xff
	os.WriteFile(filepath.Join(dir, filepath.Base(seg)), bad, 0o644)
	os.WriteFile(filepath.Join(dir, filepath.Base(lastSeg)), last, 0o644)
	if _, _, err := Open(dir, false); err == nil {
		t.Fatal("corruption in an older segment was accepted")
	}
}

func TestSnapshotCompactsTheLog(t *testing.T) {
	dir := t.TempDir()
	w, _ := mustOpen(t, dir)
	for i := uint64(0); i < 10; i++ {
		if err := w.Save(raftpb.HardState{Term: 1, Commit: i + 1}, ents(1, i+1, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	snap := raftpb.Snapshot{Data: []byte("state at 6"), Metadata: raftpb.SnapshotMetadata{Index: 6, Term: 1,
		ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
	if err := w.SaveSnapshot(snap, raftpb.HardState{Term: 1, Commit: 10}, ents(1, 7, 10)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if segs, _ := segments(dir); len(segs) != 1 { // only the one the snapshot started
		t.Fatalf("segments after compaction: %v", segs)
	}
	w, st := mustOpen(t, dir)
	defer w.Close()
	if st.Snapshot.Metadata.Index != 6 || string(st.Snapshot.Data) != "state at 6" || !reflect.DeepEqual(st.Entries, ents(1, 7, 10)) || st.HardState.Commit != 10 {
		t.Fatalf("recovered %+v", st)
	}
}

// A snapshot file is written around the data, not marshalled into a copy
// of it; the bytes are still exactly the snapshot's protobuf encoding, for
// data larger than one sync chunk, small data and none.
func TestSnapshotFileIsItsProtobuf(t *testing.T) {
	for _, size := range []int{syncEvery + 12345, 3, -1} {
		dir := t.TempDir()
		w, _ := mustOpen(t, dir)
		snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 7, Term: 2, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
		if size >= 0 {
			snap.Data = make([]byte, size)
			for i := range snap.Data {
				snap.Data[i] = byte(i * 7)
			}
		}
		if err := w.WriteSnapshot(snap, nil); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, snapName))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := snap.Marshal()
		if !bytes.Equal(got, want) {
			t.Fatalf("data of %d bytes: the file (%d bytes) is not the snapshot's encoding (%d bytes)", size, len(got), len(want))
		}
		w.Close()
	}
}
