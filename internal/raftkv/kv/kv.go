// Package kv is the state machine of the Raft key-value store: what every
// replica applies, in log order, to the same starting state, so that every
// replica holds the same data at the same log index. It is pure — no IO,
// no clock, no randomness — and deterministic, which is what Raft asks of a
// state machine and what lets the tests replay it exhaustively.
//
// Revisions. The store has one revision counter, raised by every change
// (as in etcd); each key remembers the revision of its creation
// (CreateRevision), of its last change (ModRevision) and how often it was
// written since it was created (Version). A write may be conditional on it: IfRevision N applies
// only if the key's ModRevision is N, and IfRevision 0 only if the key is
// absent — compare-and-set.
//
// Exactly-once retries. A client that sends a write and loses the answer
// cannot know whether it was applied; retrying blindly could apply it
// twice (and a retried compare-and-set could even fail against its own
// earlier success). Each write therefore carries its client's ID and a
// sequence number that the client raises for each new write. The state
// machine remembers, per client, the last sequence applied and its result:
// a retry with the same number gets that result back without being applied
// again; an older number is refused as stale. This is the session table of
// the Raft dissertation (section 6.3). Sessions are kept for the most
// recently active MaxSessions clients; a retry from a client evicted since
// is refused as unknown rather than re-applied.
//
// etcd's API. txn.go applies etcd's Range and Txn requests (Put and
// DeleteRange are transactions of one operation) with etcd's semantics, on
// etcd's own generated types: the keys live in a B-tree so that ranges come
// out in order. The store keeps the current revision only, not etcd's
// history, so a read at an older revision is answered as compacted.
package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/google/btree"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Op is a write's kind.
type Op uint8

// The operations.
const (
	OpPut Op = iota + 1
	OpDelete
	OpTxn // an etcd TxnRequest, protobuf-encoded in Value (txn.go)
)

// Unconditional is the IfRevision of a write without a condition.
const Unconditional int64 = -1

// MaxSessions bounds the session table.
const MaxSessions = 10000

// Command is one write, as proposed to Raft.
type Command struct {
	Op         Op
	Key        []byte
	Value      []byte
	IfRevision int64  // Unconditional, 0 (only if absent) or a ModRevision
	Client     uint64 // 0: no deduplication
	Seq        uint64 // the client's request number, from 1
}

// Status is how a write ended.
type Status uint8

// The statuses.
const (
	Applied        Status = iota + 1
	Failed                // the condition did not hold: Current says why
	Stale                 // an older request of this client: never applied here
	UnknownSession        // the client's session was evicted: not applied
)

// Result is what applying a command produced.
type Result struct {
	Status   Status
	Revision int64 // the store's revision after the write (Applied), or now
	Current  int64 // the key's ModRevision when the condition failed (0: absent)
	Existed  bool  // for a delete: whether the key was there
	// Txn is an OpTxn's answer (nil for the other operations); TxnErr
	// says why a transaction was refused whole, changing nothing.
	Txn    *pb.TxnResponse
	TxnErr error
}

// entry is one key's state, as etcd keeps it: the revisions of its
// creation and of its last change, and how many times it was written
// since it was created.
type entry struct {
	key       string
	value     []byte
	createRev int64
	modRev    int64
	version   int64
}

func byKey(a, b entry) bool { return a.key < b.key }

// newTree makes the ordered map the keys live in. A B-tree rather than a
// Go map, for two reasons: etcd's API reads and deletes ranges of keys in
// order, and a B-tree clones in O(1) (copy-on-write), so a snapshot never
// copies the store on the apply path — with a map, that copy stalled every
// write for tens of milliseconds on large stores.
func newTree() *btree.BTreeG[entry] { return btree.NewG(32, byKey) }

type session struct {
	seq     uint64
	result  Result
	touched uint64 // log index of the last request: eviction order
}

// Store is the replicated state.
type Store struct {
	data     *btree.BTreeG[entry]
	rev      int64
	sessions map[uint64]session
	applied  uint64
}

// New returns an empty store.
func New() *Store {
	return &Store{data: newTree(), sessions: map[uint64]session{}}
}

// Applied is the log index of the last command applied.
func (s *Store) Applied() uint64 { return s.applied }

// Revision is the store's current revision.
func (s *Store) Revision() int64 { return s.rev }

// Len is the number of keys.
func (s *Store) Len() int { return s.data.Len() }

// Get returns a key's value and ModRevision.
func (s *Store) Get(key []byte) (value []byte, modRev int64, ok bool) {
	e, ok := s.data.Get(entry{key: string(key)})
	return e.value, e.modRev, ok
}

// Skip records that the entry at index (one that carries no command: a new
// leader's empty entry, a membership change) has been applied.
func (s *Store) Skip(index uint64) {
	if index > s.applied {
		s.applied = index
	}
}

// Apply applies the command at log index; an index already applied (a
// replay after restart) changes nothing and returns the zero Result.
func (s *Store) Apply(index uint64, c Command) Result {
	if index <= s.applied {
		return Result{}
	}
	s.applied = index
	if c.Client != 0 {
		sess, ok := s.sessions[c.Client]
		switch {
		case ok && c.Seq == sess.seq:
			sess.touched = index
			s.sessions[c.Client] = sess
			return sess.result // a retry: the first answer, not a second write
		case ok && c.Seq < sess.seq:
			return Result{Status: Stale, Revision: s.rev}
		case !ok && c.Seq > 1 && len(s.sessions) >= MaxSessions:
			// Possibly evicted: refusing is safe, applying might not be.
			return Result{Status: UnknownSession, Revision: s.rev}
		}
	}
	var r Result
	if c.Op == OpTxn {
		r = s.applyTxn(c.Value)
	} else {
		r = s.apply(c)
	}
	if c.Client != 0 {
		s.sessions[c.Client] = session{seq: c.Seq, result: r, touched: index}
		if len(s.sessions) > MaxSessions {
			s.evict()
		}
	}
	return r
}

func (s *Store) apply(c Command) Result {
	cur, exists := s.data.Get(entry{key: string(c.Key)})
	if c.IfRevision != Unconditional {
		held := c.IfRevision == 0 && !exists || exists && cur.modRev == c.IfRevision
		if !held {
			return Result{Status: Failed, Revision: s.rev, Current: cur.modRev}
		}
	}
	switch c.Op {
	case OpPut:
		s.rev++
		s.put(cur, exists, string(c.Key), c.Value)
		return Result{Status: Applied, Revision: s.rev, Existed: exists}
	case OpDelete:
		if exists {
			s.rev++
			s.data.Delete(cur)
		}
		return Result{Status: Applied, Revision: s.rev, Existed: exists}
	}
	return Result{Status: Failed, Revision: s.rev}
}

// put writes key at the current revision; cur is its entry if it exists.
func (s *Store) put(cur entry, exists bool, key string, value []byte) {
	e := entry{key: key, value: append([]byte(nil), value...), createRev: s.rev, modRev: s.rev, version: 1}
	if exists {
		e.createRev, e.version = cur.createRev, cur.version+1
	}
	s.data.ReplaceOrInsert(e)
}

// evict drops the least recently active session.
func (s *Store) evict() {
	var oldest uint64
	var at uint64 = ^uint64(0)
	for id, sess := range s.sessions {
		if sess.touched < at || sess.touched == at && id < oldest {
			oldest, at = id, sess.touched
		}
	}
	delete(s.sessions, oldest)
}

// Clone returns a copy that Apply on s does not change: the tree is
// cloned copy-on-write (O(1); the two share nodes until either writes),
// the values shared (they are never modified in place), the session table
// copied (at most MaxSessions entries). It is what lets a snapshot be
// serialised off the apply path.
func (s *Store) Clone() *Store {
	c := &Store{data: s.data.Clone(), sessions: make(map[uint64]session, len(s.sessions)), rev: s.rev, applied: s.applied}
	for id, x := range s.sessions {
		c.sessions[id] = x
	}
	return c
}

// View returns a read-only copy of the keys and the revision: the tree
// cloned copy-on-write (O(1)), no session table. A long read — a range
// over many keys — runs on it without holding up Apply; the first write
// to each shared node afterwards copies it.
func (s *Store) View() *Store {
	return &Store{data: s.data.Clone(), rev: s.rev, applied: s.applied}
}

// ErrMalformed is returned for bytes that are not a command or snapshot.
var ErrMalformed = errors.New("kv: malformed")

// Encode serialises a command for the Raft log.
func (c Command) Encode() []byte {
	b := make([]byte, 0, 32+len(c.Key)+len(c.Value))
	b = append(b, byte(c.Op))
	b = binary.AppendUvarint(b, uint64(len(c.Key)))
	b = append(b, c.Key...)
	b = binary.AppendUvarint(b, uint64(len(c.Value)))
	b = append(b, c.Value...)
	b = binary.AppendVarint(b, c.IfRevision)
	b = binary.AppendUvarint(b, c.Client)
	b = binary.AppendUvarint(b, c.Seq)
	return b
}

// Decode reads a command.
func Decode(raw []byte) (Command, error) {
	r := bytes.NewReader(raw)
	op, err := r.ReadByte()
	if err != nil || Op(op) < OpPut || Op(op) > OpTxn {
		return Command{}, fmt.Errorf("%w command: op", ErrMalformed)
	}
	c := Command{Op: Op(op)}
	if c.Key, err = readBytes(r); err != nil {
		return Command{}, err
	}
	if c.Value, err = readBytes(r); err != nil {
		return Command{}, err
	}
	var e1, e2, e3 error
	c.IfRevision, e1 = binary.ReadVarint(r)
	c.Client, e2 = binary.ReadUvarint(r)
	c.Seq, e3 = binary.ReadUvarint(r)
	if e1 != nil || e2 != nil || e3 != nil || r.Len() != 0 || c.IfRevision < Unconditional {
		return Command{}, fmt.Errorf("%w command: fields", ErrMalformed)
	}
	// A transaction's answer can be large, so it is not kept in the
	// session table: etcd's API does not deduplicate retries either.
	if c.Op == OpTxn && (c.Client != 0 || c.IfRevision != Unconditional) {
		return Command{}, fmt.Errorf("%w command: a transaction has no session or condition", ErrMalformed)
	}
	return c, nil
}

func readBytes(r *bytes.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(r.Len()) {
		return nil, fmt.Errorf("%w: length", ErrMalformed)
	}
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b, nil
}

// Snapshot serialises the whole state (data, revision, sessions, applied
// index) deterministically: equal states give equal bytes.
func (s *Store) Snapshot() []byte { return s.SnapshotPaced(nil) }

// snapshotChunk is how many entries a paced snapshot serialises between
// calls to its step (a few megabytes, a millisecond or two of work).
const snapshotChunk = 8192

// SnapshotPaced is Snapshot calling step, if not nil, after every
// snapshotChunk entries of each pass over the tree: the caller's step may
// pause, so a snapshot of a large store shares the CPU with the Ready loop
// rather than taking a core for the whole serialisation. The store must
// not change meanwhile (snapshot a Clone).
func (s *Store) SnapshotPaced(step func()) []byte {
	n := 0
	tick := func() {
		if n++; step != nil && n%snapshotChunk == 0 {
			step()
		}
	}
	// Sized first, in one pass over the tree: built by appending, a
	// snapshot of 80 MB allocated 490 MB on the way (every doubling a new
	// copy), and that garbage is what the Ready loop then waited on.
	size := len(snapshotMagic) + 3*binary.MaxVarintLen64 + len(s.sessions)*(6*binary.MaxVarintLen64+2)
	s.data.Ascend(func(e entry) bool {
		size += uvarintLen(uint64(len(e.key))) + len(e.key) + uvarintLen(uint64(len(e.value))) + len(e.value) +
			varintLen(e.createRev) + varintLen(e.modRev) + varintLen(e.version)
		tick()
		return true
	})
	b := make([]byte, 0, size)
	b = append(b, snapshotMagic...)
	b = binary.AppendUvarint(b, s.applied)
	b = binary.AppendVarint(b, s.rev)
	b = binary.AppendUvarint(b, uint64(s.data.Len()))
	s.data.Ascend(func(e entry) bool {
		b = binary.AppendUvarint(b, uint64(len(e.key)))
		b = append(b, e.key...)
		b = binary.AppendUvarint(b, uint64(len(e.value)))
		b = append(b, e.value...)
		b = binary.AppendVarint(b, e.createRev)
		b = binary.AppendVarint(b, e.modRev)
		b = binary.AppendVarint(b, e.version)
		tick()
		return true
	})
	ids := make([]uint64, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		x := s.sessions[id]
		b = binary.AppendUvarint(b, id)
		b = binary.AppendUvarint(b, x.seq)
		b = binary.AppendUvarint(b, x.touched)
		b = append(b, byte(x.result.Status))
		b = binary.AppendVarint(b, x.result.Revision)
		b = binary.AppendVarint(b, x.result.Current)
		if x.result.Existed {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

func varintLen(x int64) int {
	ux := uint64(x) << 1 // zig-zag, as binary.AppendVarint
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// snapshotMagic opens every snapshot: the format with create revisions
// and versions. A snapshot without it is from an older format, refused
// with ErrOldSnapshot rather than misread.
var snapshotMagic = []byte("rkv2")

// ErrOldSnapshot is a snapshot written by an older raftkv.
var ErrOldSnapshot = errors.New("kv: snapshot of an older format (before create revisions and versions): start the node on a fresh data directory")

// Restore replaces the state with a snapshot's.
func Restore(raw []byte) (*Store, error) {
	if !bytes.HasPrefix(raw, snapshotMagic) {
		return nil, ErrOldSnapshot
	}
	r := bytes.NewReader(raw[len(snapshotMagic):])
	s := New()
	bad := fmt.Errorf("%w snapshot", ErrMalformed)
	var err error
	if s.applied, err = binary.ReadUvarint(r); err != nil {
		return nil, bad
	}
	if s.rev, err = binary.ReadVarint(r); err != nil {
		return nil, bad
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > uint64(r.Len()) {
		return nil, bad
	}
	for i := uint64(0); i < n; i++ {
		k, err1 := readBytes(r)
		v, err2 := readBytes(r)
		create, err3 := binary.ReadVarint(r)
		mod, err4 := binary.ReadVarint(r)
		version, err5 := binary.ReadVarint(r)
		if errors.Join(err1, err2, err3, err4, err5) != nil {
			return nil, bad
		}
		s.data.ReplaceOrInsert(entry{key: string(k), value: v, createRev: create, modRev: mod, version: version})
	}
	if n, err = binary.ReadUvarint(r); err != nil || n > uint64(r.Len()) {
		return nil, bad
	}
	for i := uint64(0); i < n; i++ {
		id, e1 := binary.ReadUvarint(r)
		seq, e2 := binary.ReadUvarint(r)
		touched, e3 := binary.ReadUvarint(r)
		st, e4 := r.ReadByte()
		rev, e5 := binary.ReadVarint(r)
		cur, e6 := binary.ReadVarint(r)
		ex, e7 := r.ReadByte()
		if errors.Join(e1, e2, e3, e4, e5, e6, e7) != nil || ex > 1 {
			return nil, bad
		}
		s.sessions[id] = session{seq: seq, touched: touched, result: Result{Status: Status(st), Revision: rev, Current: cur, Existed: ex == 1}}
	}
	if r.Len() != 0 {
		return nil, bad
	}
	return s, nil
}
