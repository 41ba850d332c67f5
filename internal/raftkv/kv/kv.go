// Package kv is the state machine of the Raft key-value store: what every
// replica applies, in log order, to the same starting state, so that every
// replica holds the same data at the same log index. It is pure — no IO,
// no clock, no randomness — and deterministic, which is what Raft asks of a
// state machine and what lets the tests replay it exhaustively.
//
// Revisions. The store has one revision counter, raised by every change
// (as in etcd); each key remembers the revision of its last change
// (ModRevision). A write may be conditional on it: IfRevision N applies
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
package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Op is a write's kind.
type Op uint8

// The operations.
const (
	OpPut Op = iota + 1
	OpDelete
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
}

type entry struct {
	value  []byte
	modRev int64
}

type session struct {
	seq     uint64
	result  Result
	touched uint64 // log index of the last request: eviction order
}

// Store is the replicated state.
type Store struct {
	data     map[string]entry
	rev      int64
	sessions map[uint64]session
	applied  uint64
}

// New returns an empty store.
func New() *Store {
	return &Store{data: map[string]entry{}, sessions: map[uint64]session{}}
}

// Applied is the log index of the last command applied.
func (s *Store) Applied() uint64 { return s.applied }

// Revision is the store's current revision.
func (s *Store) Revision() int64 { return s.rev }

// Len is the number of keys.
func (s *Store) Len() int { return len(s.data) }

// Get returns a key's value and ModRevision.
func (s *Store) Get(key []byte) (value []byte, modRev int64, ok bool) {
	e, ok := s.data[string(key)]
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
	r := s.apply(c)
	if c.Client != 0 {
		s.sessions[c.Client] = session{seq: c.Seq, result: r, touched: index}
		if len(s.sessions) > MaxSessions {
			s.evict()
		}
	}
	return r
}

func (s *Store) apply(c Command) Result {
	cur, exists := s.data[string(c.Key)]
	if c.IfRevision != Unconditional {
		held := c.IfRevision == 0 && !exists || exists && cur.modRev == c.IfRevision
		if !held {
			return Result{Status: Failed, Revision: s.rev, Current: cur.modRev}
		}
	}
	switch c.Op {
	case OpPut:
		s.rev++
		s.data[string(c.Key)] = entry{value: append([]byte(nil), c.Value...), modRev: s.rev}
		return Result{Status: Applied, Revision: s.rev, Existed: exists}
	case OpDelete:
		if exists {
			s.rev++
			delete(s.data, string(c.Key))
		}
		return Result{Status: Applied, Revision: s.rev, Existed: exists}
	}
	return Result{Status: Failed, Revision: s.rev}
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

// Clone returns a copy that Apply on s does not change: the maps are
// copied, the values shared (they are never modified in place). It is what
// lets a snapshot be serialised off the apply path.
func (s *Store) Clone() *Store {
	c := &Store{data: make(map[string]entry, len(s.data)), sessions: make(map[uint64]session, len(s.sessions)), rev: s.rev, applied: s.applied}
	for k, e := range s.data {
		c.data[k] = e
	}
	for id, x := range s.sessions {
		c.sessions[id] = x
	}
	return c
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
	if err != nil || Op(op) != OpPut && Op(op) != OpDelete {
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
func (s *Store) Snapshot() []byte {
	b := binary.AppendUvarint(nil, s.applied)
	b = binary.AppendVarint(b, s.rev)
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		e := s.data[k]
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(e.value)))
		b = append(b, e.value...)
		b = binary.AppendVarint(b, e.modRev)
	}
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

// Restore replaces the state with a snapshot's.
func Restore(raw []byte) (*Store, error) {
	r := bytes.NewReader(raw)
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
		mod, err3 := binary.ReadVarint(r)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, bad
		}
		s.data[string(k)] = entry{value: v, modRev: mod}
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
