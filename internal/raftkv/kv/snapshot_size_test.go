package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// BenchmarkSnapshot serialises a store of 300,000 keys with 256-byte
// values (the size at which the bench's put p99 was measured).
func BenchmarkSnapshot(b *testing.B) {
	s := New()
	value := make([]byte, 256)
	for i := range 300_000 {
		s.Apply(uint64(i+1), Command{Op: OpPut, Key: []byte(fmt.Sprintf("key-%08d", i)), Value: value, IfRevision: Unconditional})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(s.Clone().Snapshot()) < 300_000*256 {
			b.Fatal("short snapshot")
		}
	}
}

// The varint sizes a snapshot is allocated by are exactly what
// encoding/binary writes.
func TestVarintLengths(t *testing.T) {
	for _, x := range []int64{0, 1, -1, 63, 64, -64, -65, 127, 128, 1 << 20, -(1 << 40), 1<<63 - 1, -1 << 63} {
		if got, want := varintLen(x), len(binary.AppendVarint(nil, x)); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", x, got, want)
		}
		if x >= 0 {
			if got, want := uvarintLen(uint64(x)), len(binary.AppendUvarint(nil, uint64(x))); got != want {
				t.Errorf("uvarintLen(%d) = %d, want %d", x, got, want)
			}
		}
	}
	if got := uvarintLen(^uint64(0)); got != binary.MaxVarintLen64 {
		t.Errorf("uvarintLen(max) = %d", got)
	}
}

// A snapshot is allocated once, at its size: what is left over is at most
// the allowance for the header's and the sessions' varints.
func TestSnapshotAllocatedOnce(t *testing.T) {
	s := New()
	for i := range 5000 {
		c := Command{Op: OpPut, Key: []byte(fmt.Sprint("k", i)), Value: make([]byte, i%300), IfRevision: Unconditional}
		if i%10 == 0 {
			c.Client, c.Seq = uint64(i+1), 1 // a session per tenth write
		}
		s.Apply(uint64(i+1), c)
	}
	snap := s.Snapshot()
	allowance := 3*binary.MaxVarintLen64 + len(s.sessions)*(6*binary.MaxVarintLen64+2)
	if spare := cap(snap) - len(snap); spare > allowance {
		t.Fatalf("%d bytes spare in a %d-byte snapshot (allowance %d): it grew while written", spare, len(snap), allowance)
	}
	back, err := Restore(snap)
	if err != nil || !bytes.Equal(back.Snapshot(), snap) {
		t.Fatalf("round trip: %v", err)
	}
}

// A paced snapshot is byte for byte the unpaced one, and its step is
// called once per snapshotChunk entries of each of its two passes.
func TestSnapshotPacedIsTheSameSnapshot(t *testing.T) {
	s := New()
	const keys = 3*snapshotChunk + 100
	for i := range keys {
		s.Apply(uint64(i+1), Command{Op: OpPut, Key: []byte(fmt.Sprint("k", i)), Value: []byte{byte(i)}, IfRevision: Unconditional})
	}
	steps := 0
	paced := s.SnapshotPaced(func() { steps++ })
	if !bytes.Equal(paced, s.Snapshot()) {
		t.Fatal("the paced snapshot differs from the unpaced one")
	}
	if want := 2 * keys / snapshotChunk; steps != want {
		t.Fatalf("step called %d times over %d keys, want %d", steps, keys, want)
	}
}
