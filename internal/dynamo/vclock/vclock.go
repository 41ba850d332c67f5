// Package vclock is the Dynamo store's versioning (section 4.4 of the
// Dynamo paper): vector clocks, and the rule that decides which versions of
// a key survive a write. It is pure and exhaustively tested.
//
// A Clock maps each node that coordinated a write of the value to a
// counter. Clock a descends b when every counter of b is ≤ the same counter
// in a: a's writer had seen b. When neither descends the other, the writes
// were concurrent and both must be kept: they are siblings, returned
// together to the reader, who resolves them and writes back with the
// merged context, which then covers both and replaces them.
//
// Versions are dotted version vectors (see Version): each carries the one
// write event that made it apart from the context its writer had seen, so
// a version is replaced exactly by writes whose context includes its event
// — never by a concurrent write that happened to go through the same node.
//
// Pruning. Clocks grow by one entry per coordinating node. Each entry
// remembers when it was last incremented; Prune drops the oldest entries
// beyond MaxEntries, but never one younger than MinAge. Pruning only
// shrinks contexts, and a smaller context covers fewer versions: the worst
// it can do is keep an old version as an extra sibling, never lose a write.
// That is the documented bound (Riak's small/big vclock does the same).
package vclock

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Entry is what a clock knows of one node's writes to a key: every write
// numbered 1…Counter, plus the later ones listed in Extra (sorted, all
// above Counter+1). Writes a coordinator numbers densely per key, so a
// reader that saw write 7 but not write 6 holds {Counter: 5, Extra: [7]}
// and covers exactly what it saw. As a dot (one write event) only Node,
// Counter and At are used.
type Entry struct {
	Node    string
	Counter uint64
	At      int64    // unix ms of the last increment, for pruning
	Extra   []uint64 // writes seen beyond the contiguous prefix
}

// Clock is a vector clock, entries sorted by node. The zero value is the
// empty clock. Clocks are values: methods return new clocks.
type Clock []Entry

// Covers reports whether the clock has seen node's write number counter.
func (c Clock) Covers(node string, counter uint64) bool {
	i, ok := c.find(node)
	if !ok {
		return false
	}
	e := c[i]
	if counter <= e.Counter {
		return true
	}
	j := sort.Search(len(e.Extra), func(j int) bool { return e.Extra[j] >= counter })
	return j < len(e.Extra) && e.Extra[j] == counter
}

// Add returns c having also seen the write dot.
func (c Clock) Add(dot Entry) Clock {
	return Merge(c, Clock{{Node: dot.Node, Counter: 0, At: dot.At, Extra: []uint64{dot.Counter}}})
}

// normalize folds extras that continue the prefix into it and drops the
// ones it already covers.
func (e Entry) normalize() Entry {
	sort.Slice(e.Extra, func(i, j int) bool { return e.Extra[i] < e.Extra[j] })
	var rest []uint64
	for _, x := range e.Extra {
		switch {
		case x <= e.Counter:
		case x == e.Counter+1:
			e.Counter = x
		case len(rest) > 0 && rest[len(rest)-1] == x:
		default:
			rest = append(rest, x)
		}
	}
	// A fold can make earlier leftovers contiguous only if they were
	// below it, and they were visited first; one more pass settles it.
	out := rest[:0:0]
	for _, x := range rest {
		if x == e.Counter+1 {
			e.Counter = x
		} else if x > e.Counter {
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	e.Extra = out
	return e
}

// covers reports whether a has seen every write b has.
func (a Entry) covers(b Entry) bool {
	c := Clock{a}
	for x := a.Counter + 1; x <= b.Counter; x++ {
		if !c.Covers(a.Node, x) {
			return false
		}
	}
	for _, x := range b.Extra {
		if !c.Covers(a.Node, x) {
			return false
		}
	}
	return true
}

// Order is how two clocks relate.
type Order int

// The four relations.
const (
	Equal Order = iota
	Before
	After
	Concurrent
)

func (o Order) String() string { return [...]string{"equal", "before", "after", "concurrent"}[o] }

func (c Clock) find(node string) (int, bool) {
	i := sort.Search(len(c), func(i int) bool { return c[i].Node >= node })
	return i, i < len(c) && c[i].Node == node
}

// Get returns node's counter (0 if absent).
func (c Clock) Get(node string) uint64 {
	if i, ok := c.find(node); ok {
		return c[i].Counter
	}
	return 0
}

// Increment returns c with node's counter raised by one, stamped at now.
func (c Clock) Increment(node string, now time.Time) Clock {
	out := append(Clock(nil), c...)
	i, ok := out.find(node)
	if ok {
		out[i].Counter++
		out[i].At = now.UnixMilli()
		out[i] = out[i].normalize()
		return out
	}
	out = append(out, Entry{})
	copy(out[i+1:], out[i:])
	out[i] = Entry{Node: node, Counter: 1, At: now.UnixMilli()}
	return out
}

// Compare says how a relates to b: by the sets of writes they have seen.
func Compare(a, b Clock) Order {
	aBigger, bBigger := false, false
	empty := func(node string) Entry { return Entry{Node: node} }
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var x, y Entry
		switch {
		case j == len(b) || i < len(a) && a[i].Node < b[j].Node:
			x, y = a[i], empty(a[i].Node)
			i++
		case i == len(a) || b[j].Node < a[i].Node:
			x, y = empty(b[j].Node), b[j]
			j++
		default:
			x, y = a[i], b[j]
			i++
			j++
		}
		if !x.covers(y) {
			bBigger = true
		}
		if !y.covers(x) {
			aBigger = true
		}
	}
	switch {
	case aBigger && bBigger:
		return Concurrent
	case aBigger:
		return After
	case bBigger:
		return Before
	}
	return Equal
}

// Descends reports whether a has seen everything b has (a ≥ b).
func Descends(a, b Clock) bool {
	o := Compare(a, b)
	return o == After || o == Equal
}

// Merge returns a clock that has seen every write any of clocks has.
func Merge(clocks ...Clock) Clock {
	m := map[string]Entry{}
	for _, c := range clocks {
		for _, e := range c {
			cur, ok := m[e.Node]
			if !ok {
				cur = Entry{Node: e.Node}
			}
			cur.Counter = max(cur.Counter, e.Counter)
			cur.At = max(cur.At, e.At)
			cur.Extra = append(append([]uint64(nil), cur.Extra...), e.Extra...)
			m[e.Node] = cur.normalize()
		}
	}
	out := make(Clock, 0, len(m))
	for _, e := range m {
		if e.Counter > 0 || len(e.Extra) > 0 {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// PruneLimits bound a clock's size.
type PruneLimits struct {
	MaxEntries int           // keep at most this many entries (default 50)
	MinAge     time.Duration // never drop an entry younger than this (default 1 day)
}

// Prune drops the least recently incremented entries beyond MaxEntries,
// sparing any younger than MinAge.
func (c Clock) Prune(l PruneLimits, now time.Time) Clock {
	if l.MaxEntries <= 0 {
		l.MaxEntries = 50
	}
	if l.MinAge <= 0 {
		l.MinAge = 24 * time.Hour
	}
	if len(c) <= l.MaxEntries {
		return c
	}
	byAge := append(Clock(nil), c...)
	sort.SliceStable(byAge, func(i, j int) bool { return byAge[i].At < byAge[j].At })
	drop := map[string]bool{}
	excess := len(c) - l.MaxEntries
	for _, e := range byAge {
		if excess == 0 || now.Sub(time.UnixMilli(e.At)) < l.MinAge {
			break
		}
		drop[e.Node] = true
		excess--
	}
	out := make(Clock, 0, len(c)-len(drop))
	for _, e := range c {
		if !drop[e.Node] {
			out = append(out, e)
		}
	}
	return out
}

// Version is one stored version of a key, as a dotted version vector
// (Preguiça et al.; what Riak 2.0 adopted): Dot is the write event that
// made it — the coordinating node and a counter that node never reuses —
// and Context is the clock the writer had seen, i.e. what it replaces.
//
// Keeping the dot apart from the context is what makes a blind write (no
// context) through the same node as an earlier write a sibling of it
// rather than its successor. With plain vector clocks the coordinator's
// counter would climb past the earlier write's and claim to have seen it:
// "false causality", a silently lost write.
type Version struct {
	Dot       Entry
	Context   Clock
	Value     []byte
	Tombstone bool // a delete: kept until reaped so it can win over older writes
}

// Clock is the version's full clock: its context with its own dot.
func (v Version) Clock() Clock { return v.Context.Add(v.Dot) }

// SameEvent reports whether a and b were made by the same write.
func SameEvent(a, b Version) bool {
	return a.Dot.Node == b.Dot.Node && a.Dot.Counter == b.Dot.Counter
}

// CoveredBy reports whether w replaces v: w is v itself, or w's writer had
// seen v (v's dot is within w's context).
func (v Version) CoveredBy(w Version) bool {
	return SameEvent(v, w) || w.Context.Covers(v.Dot.Node, v.Dot.Counter)
}

// Reconcile folds incoming into the versions a replica holds and returns
// what survives: incoming is dropped when some existing version covers it
// (a duplicate delivery or old news), every existing version incoming
// covers is replaced by it, and the rest stay side by side as siblings.
// The result is sorted by dot, so replicas holding the same versions hold
// the same bytes, and the outcome does not depend on the order in which
// writes arrive.
func Reconcile(existing []Version, incoming Version) []Version {
	for _, v := range existing {
		if incoming.CoveredBy(v) {
			return existing
		}
	}
	out := make([]Version, 0, len(existing)+1)
	for _, v := range existing {
		if !v.CoveredBy(incoming) {
			out = append(out, v)
		}
	}
	out = append(out, incoming)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Dot, out[j].Dot
		return a.Node < b.Node || a.Node == b.Node && a.Counter < b.Counter
	})
	return out
}

// Context is the causal context handed to clients: the merge of the full
// clocks of every version they were shown.
func Context(versions []Version) Clock {
	clocks := make([]Clock, len(versions))
	for i, v := range versions {
		clocks[i] = v.Clock()
	}
	return Merge(clocks...)
}

// Encoding: version byte, entry count, then per entry a length-prefixed
// node name, counter and timestamp (uvarints); base64url for headers.
const encodingVersion = 2

// ErrMalformed is returned for a context that does not decode.
var ErrMalformed = errors.New("vclock: malformed causal context")

// String encodes c for the X-Causal-Context header; the empty clock is "".
func (c Clock) String() string {
	if len(c) == 0 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(c.MarshalBinary())
}

// MarshalBinary encodes c.
func (c Clock) MarshalBinary() []byte {
	b := []byte{encodingVersion}
	b = binary.AppendUvarint(b, uint64(len(c)))
	for _, e := range c {
		b = binary.AppendUvarint(b, uint64(len(e.Node)))
		b = append(b, e.Node...)
		b = binary.AppendUvarint(b, e.Counter)
		b = binary.AppendUvarint(b, uint64(e.At))
		b = binary.AppendUvarint(b, uint64(len(e.Extra)))
		prev := e.Counter
		for _, x := range e.Extra {
			b = binary.AppendUvarint(b, x-prev) // deltas: small
			prev = x
		}
	}
	return b
}

// Parse decodes a header value; the empty string is the empty clock.
func Parse(s string) (Clock, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > 64<<10 {
		return nil, fmt.Errorf("%w: longer than 64 KiB", ErrMalformed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrMalformed)
	}
	return Unmarshal(raw)
}

// Unmarshal decodes MarshalBinary's output, checking that entries are
// sorted, distinct and non-empty.
func Unmarshal(raw []byte) (Clock, error) {
	r := bytes.NewReader(raw)
	if v, err := r.ReadByte(); err != nil || v != encodingVersion {
		return nil, fmt.Errorf("%w: unknown encoding", ErrMalformed)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1024 {
		return nil, fmt.Errorf("%w: entry count", ErrMalformed)
	}
	c := make(Clock, 0, n)
	for i := uint64(0); i < n; i++ {
		l, err := binary.ReadUvarint(r)
		if err != nil || l == 0 || l > 256 || l > uint64(r.Len()) {
			return nil, fmt.Errorf("%w: node name", ErrMalformed)
		}
		name := make([]byte, l)
		_, _ = r.Read(name)
		ctr, err1 := binary.ReadUvarint(r)
		at, err2 := binary.ReadUvarint(r)
		if err1 != nil || err2 != nil || at > 1<<62 {
			return nil, fmt.Errorf("%w: entry", ErrMalformed)
		}
		e := Entry{Node: string(name), Counter: ctr, At: int64(at)}
		nx, err := binary.ReadUvarint(r)
		if err != nil || nx > 4096 {
			return nil, fmt.Errorf("%w: extras", ErrMalformed)
		}
		prev := ctr
		for k := uint64(0); k < nx; k++ {
			d, err := binary.ReadUvarint(r)
			// Each extra must be above the prefix by more than one and
			// above the previous extra: the canonical form, nothing else.
			if err != nil || d == 0 || k == 0 && d < 2 || prev+d < prev {
				return nil, fmt.Errorf("%w: extras", ErrMalformed)
			}
			prev += d
			e.Extra = append(e.Extra, prev)
		}
		if len(c) > 0 && c[len(c)-1].Node >= e.Node {
			return nil, fmt.Errorf("%w: entries out of order", ErrMalformed)
		}
		c = append(c, e)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrMalformed)
	}
	if len(c) == 0 {
		return nil, nil
	}
	return c, nil
}
