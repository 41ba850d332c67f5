// Package wal is the Raft node's durable state: an append-only log of
// records (entries and hard state) in segment files, and the latest
// snapshot in its own file — what etcd keeps in its wal/ and snap/
// directories, reduced to its essentials.
//
// The Ready contract of go.etcd.io/raft says: before sending messages or
// applying committed entries of a Ready, persist its HardState and Entries
// (fsync), and its Snapshot if any. Save does exactly that, in one write
// and one fsync per Ready, which is where batching pays: a Ready carries
// every entry proposed since the last one.
//
// A record is length (4 bytes), CRC-32C of type and payload (4), type (1)
// and payload: a marshalled raftpb.Entry or raftpb.HardState. On open the
// segments are replayed in order; an entry at index i discards any
// entries at i or later read before it (Raft truncating a follower's
// conflicting tail), and a torn or corrupt record at the end of the last
// segment — a crash in the middle of a write — is cut off, because its
// Save never returned and so never counted.
//
// SaveSnapshot writes the snapshot file (write to a temporary name, fsync,
// rename, fsync the directory), starts a new segment holding the hard
// state, and deletes the segments the snapshot made unnecessary: log
// compaction.
package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
)

const (
	recEntry     byte = 1
	recHardState byte = 2
	maxRecord         = 64 << 20
	snapName          = "snapshot"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// State is what a restarted node recovers.
type State struct {
	Snapshot  raftpb.Snapshot
	HardState raftpb.HardState
	Entries   []raftpb.Entry // after the snapshot, in order
}

// WAL is the open log.
type WAL struct {
	dir  string
	f    *os.File
	w    *bufio.Writer
	seq  int
	sync bool
}

// Exists reports whether dir holds a log (a node restarting, not a new one).
func Exists(dir string) bool {
	segs, _ := segments(dir)
	return len(segs) > 0
}

// Open recovers the state in dir (creating it empty) and opens a new
// segment for appends. With sync false, Save never fsyncs (tests, --sync none).
func Open(dir string, sync bool) (*WAL, State, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, State{}, fmt.Errorf("wal: %w", err)
	}
	var st State
	if raw, err := os.ReadFile(filepath.Join(dir, snapName)); err == nil {
		if err := st.Snapshot.Unmarshal(raw); err != nil {
			return nil, State{}, fmt.Errorf("wal: snapshot: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, State{}, fmt.Errorf("wal: snapshot: %w", err)
	}
	segs, err := segments(dir)
	if err != nil {
		return nil, State{}, err
	}
	for i, seg := range segs {
		if err := replay(filepath.Join(dir, segName(seg)), &st, i == len(segs)-1); err != nil {
			return nil, State{}, err
		}
	}
	// Entries the snapshot covers are not needed.
	snapIndex := st.Snapshot.Metadata.Index
	k := 0
	for k < len(st.Entries) && st.Entries[k].Index <= snapIndex {
		k++
	}
	st.Entries = st.Entries[k:]
	w := &WAL{dir: dir, sync: sync}
	if len(segs) > 0 {
		w.seq = segs[len(segs)-1]
	}
	if err := w.rotate(); err != nil {
		return nil, State{}, err
	}
	// The new segment starts with the hard state, so older segments can go
	// once a snapshot covers their entries.
	if err := w.Save(st.HardState, nil); err != nil {
		return nil, State{}, err
	}
	return w, st, nil
}

func segName(seq int) string { return fmt.Sprintf("%016d.wal", seq) }

func segments(dir string) ([]int, error) {
	names, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("wal: %w", err)
	}
	var out []int
	for _, n := range names {
		var seq int
		if strings.HasSuffix(n.Name(), ".wal") {
			if _, err := fmt.Sscanf(n.Name(), "%016d.wal", &seq); err == nil {
				out = append(out, seq)
			}
		}
	}
	sort.Ints(out)
	return out, nil
}

// replay reads one segment into st. In the last segment a bad tail is cut
// off (a torn write); anywhere else it is corruption.
func replay(path string, st *State, last bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var offset int64
	for {
		typ, payload, n, err := readRecord(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if !last {
				return fmt.Errorf("wal: %s at offset %d: %w", filepath.Base(path), offset, err)
			}
			if err := f.Truncate(offset); err != nil {
				return fmt.Errorf("wal: cutting a torn tail: %w", err)
			}
			return f.Sync()
		}
		offset += n
		switch typ {
		case recEntry:
			var e raftpb.Entry
			if err := e.Unmarshal(payload); err != nil {
				return fmt.Errorf("wal: entry: %w", err)
			}
			k := len(st.Entries)
			for k > 0 && st.Entries[k-1].Index >= e.Index {
				k--
			}
			st.Entries = append(st.Entries[:k], e)
		case recHardState:
			if err := st.HardState.Unmarshal(payload); err != nil {
				return fmt.Errorf("wal: hard state: %w", err)
			}
		default:
			return fmt.Errorf("wal: record type %d", typ)
		}
	}
}

var errTorn = errors.New("torn or corrupt record")

func readRecord(r *bufio.Reader) (typ byte, payload []byte, n int64, err error) {
	var head [9]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		if err == io.EOF {
			return 0, nil, 0, io.EOF
		}
		return 0, nil, 0, errTorn
	}
	size := binary.LittleEndian.Uint32(head[0:4])
	sum := binary.LittleEndian.Uint32(head[4:8])
	if size > maxRecord {
		return 0, nil, 0, errTorn
	}
	payload = make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, 0, errTorn
	}
	crc := crc32.Update(crc32.Checksum(head[8:9], crcTable), crcTable, payload)
	if crc != sum {
		return 0, nil, 0, errTorn
	}
	return head[8], payload, int64(9 + size), nil
}

func (w *WAL) rotate() error {
	if w.f != nil {
		if err := w.flush(true); err != nil {
			return err
		}
		w.f.Close()
	}
	w.seq++
	f, err := os.OpenFile(filepath.Join(w.dir, segName(w.seq)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("wal: new segment: %w", err)
	}
	w.f, w.w = f, bufio.NewWriterSize(f, 256<<10)
	return syncDir(w.dir)
}

func (w *WAL) record(typ byte, payload []byte) error {
	var head [9]byte
	binary.LittleEndian.PutUint32(head[0:4], uint32(len(payload)))
	head[8] = typ
	binary.LittleEndian.PutUint32(head[4:8], crc32.Update(crc32.Checksum(head[8:9], crcTable), crcTable, payload))
	if _, err := w.w.Write(head[:]); err != nil {
		return err
	}
	_, err := w.w.Write(payload)
	return err
}

func (w *WAL) flush(sync bool) error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("wal: write: %w", err)
	}
	if sync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("wal: fsync: %w", err)
		}
	}
	return nil
}

// Save appends a Ready's entries and hard state (either may be empty) in
// one write and, with sync on, one fsync.
func (w *WAL) Save(hs raftpb.HardState, entries []raftpb.Entry) error {
	for i := range entries {
		b, err := entries[i].Marshal()
		if err != nil {
			return fmt.Errorf("wal: %w", err)
		}
		if err := w.record(recEntry, b); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	if !raftEmpty(hs) {
		b, err := hs.Marshal()
		if err != nil {
			return fmt.Errorf("wal: %w", err)
		}
		if err := w.record(recHardState, b); err != nil {
			return fmt.Errorf("wal: %w", err)
		}
	}
	return w.flush(w.sync && (len(entries) > 0 || !raftEmpty(hs)))
}

func raftEmpty(hs raftpb.HardState) bool { return hs.Term == 0 && hs.Vote == 0 && hs.Commit == 0 }

// SaveSnapshot makes snap the recovery point and deletes every older
// segment: WriteSnapshot, then Compact.
func (w *WAL) SaveSnapshot(snap raftpb.Snapshot, hs raftpb.HardState, tail []raftpb.Entry) error {
	if err := w.WriteSnapshot(snap, nil); err != nil {
		return err
	}
	return w.Compact(hs, tail)
}

// WriteSnapshot writes the snapshot file durably (temporary file, fsync,
// rename, directory fsync). It touches no segment, so it may run while
// Save appends — the slow part of a snapshot, off the Ready loop. step, if
// not nil, is called after every syncEvery bytes written and synced; it
// may pause, to leave the disk to the log's own syncs.
func (w *WAL) WriteSnapshot(snap raftpb.Snapshot, step func()) error {
	// The file is snap's protobuf encoding, written around the data
	// instead of marshalled into a copy of it (tens of megabytes of
	// garbage per snapshot): field 1 (the data), then field 2 (the
	// metadata), as Marshal lays them out.
	meta, err := snap.Metadata.Marshal()
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	var head []byte
	if snap.Data != nil {
		head = binary.AppendUvarint([]byte{0x0a}, uint64(len(snap.Data)))
	}
	tail := append(binary.AppendUvarint([]byte{0x12}, uint64(len(meta))), meta...)
	tmp := filepath.Join(w.dir, fmt.Sprintf("%s.%d.tmp", snapName, snap.Metadata.Index))
	if err := writeFileSync(tmp, step, head, snap.Data, tail); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, snapName)); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	return syncDir(w.dir)
}

// Compact starts a new segment with hs, the current hard state, and tail,
// the log's entries after the snapshot just written, then deletes every
// older segment: nothing but what the snapshot covers is dropped.
func (w *WAL) Compact(hs raftpb.HardState, tail []raftpb.Entry) error {
	old := w.seq
	if err := w.rotate(); err != nil {
		return err
	}
	if err := w.Save(hs, tail); err != nil {
		return err
	}
	if err := w.flush(true); err != nil {
		return err
	}
	return w.dropSegmentsUpTo(old)
}

func (w *WAL) dropSegmentsUpTo(seq int) error {
	segs, err := segments(w.dir)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s <= seq {
			if err := os.Remove(filepath.Join(w.dir, segName(s))); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
		}
	}
	return syncDir(w.dir)
}

// Close flushes and closes the current segment.
func (w *WAL) Close() error {
	err := w.flush(w.sync)
	return errors.Join(err, w.f.Close())
}

// syncEvery is how much of a large file is written between syncs. A
// snapshot is tens of megabytes; written at once and synced at the end,
// its dirty pages sit in the page cache, and on ext4 (data=ordered) the
// log's next fsync must wait for the journal commit that writes them all
// out: every write acknowledged meanwhile waits behind the snapshot. Synced
// every few megabytes, a log fsync waits for at most that much.
const syncEvery = 4 << 20

// writeFileSync writes parts one after the other to a new file, syncing
// every syncEvery bytes and at the end.
func writeFileSync(path string, step func(), parts ...[]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	unsynced := 0
	for _, b := range parts {
		for len(b) > 0 {
			n := min(len(b), syncEvery-unsynced)
			if _, err := f.Write(b[:n]); err != nil {
				f.Close()
				return fmt.Errorf("wal: %w", err)
			}
			b, unsynced = b[n:], unsynced+n
			if unsynced == syncEvery {
				if err := f.Sync(); err != nil {
					f.Close()
					return fmt.Errorf("wal: %w", err)
				}
				unsynced = 0
				if step != nil {
					step()
				}
			}
		}
	}
	if err := f.Sync(); err != nil { // the last bytes, an empty file, and the size
		f.Close()
		return fmt.Errorf("wal: %w", err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: fsync dir: %w", err)
	}
	return nil
}
