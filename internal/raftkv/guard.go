package raftkv

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

// The guard is what stands between the peer port and etcd raft. Raft
// trusts its messages: it was written for peers that are the same code,
// and it panics on states a correct peer never produces (a commit index
// past the end of the log, an append that rewrites a committed entry) —
// one forged message would take a node down, and a term near 2^64 would
// overflow on the next election and kill it on every restart. So every
// message from a peer is checked here first, against what this node
// knows, and dropped (and counted) when it cannot be right. Dropping is
// always safe: the transport may lose any message and Raft resends.
//
// The checks are conservative: a message from a correct peer passes them
// all, whatever the timing, because each bound is one a correct peer
// cannot cross (see each rule). They do not make a forged message
// harmless in general — a forger who passes them can still, say, pose as
// a leader — which is why peers authenticate (the cluster key) before any
// message gets here.

// maxTermAhead bounds how far a message's term may be ahead of ours. With
// PreVote, terms grow by one per real election; a node that missed a
// million elections while it was away is not coming back anyway.
const maxTermAhead = 1 << 20

// maxTerm keeps terms far from overflow (a wrapped term is a dead cluster).
const maxTerm = math.MaxUint64 >> 1

// raftView is what the guard knows of this node at the moment.
type raftView struct {
	self      uint64
	term      uint64 // the persisted term
	commit    uint64 // the persisted commit index
	lastIndex uint64 // the last index in stable storage
	// termAt is the term of a stored entry (false: not stored).
	termAt func(index uint64) (uint64, bool)
	// member reports whether id is a member this node knows of.
	member func(id uint64) bool
	// raftTerm is Raft's own current term, which the persisted one may
	// trail by a Ready: asked only on the rare path (a suspected conflict).
	raftTerm func() uint64
}

// errBadMessage is the class of every refusal.
var errBadMessage = errors.New("raftkv: peer message refused")

func refuse(reason string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadMessage, fmt.Sprintf(reason, args...))
}

// peerMessageTypes are the messages one node sends another. The rest
// (MsgHup, MsgBeat, storage messages …) are local to a node.
var peerMessageTypes = map[raftpb.MessageType]bool{
	raftpb.MsgProp: true, raftpb.MsgApp: true, raftpb.MsgAppResp: true,
	raftpb.MsgVote: true, raftpb.MsgVoteResp: true, raftpb.MsgPreVote: true, raftpb.MsgPreVoteResp: true,
	raftpb.MsgSnap: true, raftpb.MsgHeartbeat: true, raftpb.MsgHeartbeatResp: true,
	raftpb.MsgTransferLeader: true, raftpb.MsgTimeoutNow: true,
	raftpb.MsgReadIndex: true, raftpb.MsgReadIndexResp: true,
}

// checkMessage decides whether m may be stepped into Raft.
func checkMessage(m *raftpb.Message, v raftView) error {
	switch {
	case !peerMessageTypes[m.Type]:
		return refuse("%v is not a message peers send", m.Type)
	case m.To != v.self:
		return refuse("addressed to %d, this is %d", m.To, v.self)
	case m.From == 0 || m.From == v.self:
		return refuse("from %d", m.From)
	case !v.member(m.From):
		return refuse("from %d, not a member", m.From)
	case m.Term > maxTerm || m.Term > v.term+maxTermAhead:
		return refuse("term %d; ours is %d", m.Term, v.term)
	}
	switch m.Type {
	case raftpb.MsgHeartbeat:
		// A leader sends min(its commit, our match), and we only report
		// a match for what we have stored.
		if m.Commit > v.lastIndex {
			return refuse("heartbeat commits %d; our log ends at %d", m.Commit, v.lastIndex)
		}
	case raftpb.MsgApp:
		return checkAppend(m, v)
	case raftpb.MsgAppResp:
		// A follower acknowledges what we sent it, and we send only
		// entries we have stored.
		if !m.Reject && m.Index > v.lastIndex {
			return refuse("acknowledges %d; our log ends at %d", m.Index, v.lastIndex)
		}
	case raftpb.MsgProp:
		for i := range m.Entries {
			if err := checkEntry(&m.Entries[i]); err != nil {
				return err
			}
		}
	case raftpb.MsgSnap:
		return checkSnapshot(m, v)
	}
	return nil
}

// checkAppend: the entries follow the previous index one by one, their
// terms never decrease and never pass the message's, and — when the
// previous entry matches ours, so that Raft would go on to append — an
// entry at or below our commit index agrees with ours (a correct leader's
// log holds every committed entry: the Leader Completeness property).
// When the previous entry does not match, Raft rejects the append without
// looking at its entries, so there is nothing to check.
//
// The commit index here is the persisted one, which may trail Raft's by
// the Ready being handled: an append that rewrites an entry committed in
// that window passes. Authentication, not this rule, keeps forgers out.
func checkAppend(m *raftpb.Message, v raftView) error {
	if m.Index > maxTerm || m.LogTerm > m.Term {
		return refuse("append after %d/%d in term %d", m.Index, m.LogTerm, m.Term)
	}
	prevMatches := false
	if t, ok := v.termAt(m.Index); ok && t == m.LogTerm {
		prevMatches = true
	}
	prevTerm := m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != m.Index+uint64(i)+1 || e.Term < prevTerm || e.Term > m.Term {
			return refuse("append entry %d/%d out of order", e.Index, e.Term)
		}
		prevTerm = e.Term
		if prevMatches && e.Index <= v.commit {
			// Only a definite mismatch counts: an entry compacted away
			// since the previous one was looked up (the Ready loop
			// compacts concurrently) is one Raft cannot conflict on
			// either — if the previous entry still matches for Raft,
			// every committed entry after it is still in its log.
			if t, ok := v.termAt(e.Index); ok && t != e.Term && !staleTerm(m, v) {
				return refuse("append rewrites committed entry %d", e.Index)
			}
		}
		if err := checkEntry(e); err != nil {
			return err
		}
	}
	return nil
}

// staleTerm: a message from an older term, which Raft ignores whatever it
// holds — such as an old leader's append delayed in the network, which may
// well disagree with what its successor committed since. Within one term
// a leader's log only grows, so an append of the current term that
// disagrees with a committed entry cannot come from a correct leader.
func staleTerm(m *raftpb.Message, v raftView) bool {
	if m.Term < v.term {
		return true
	}
	return v.raftTerm != nil && m.Term < v.raftTerm()
}

// checkEntry: a membership change must decode and name a real member.
func checkEntry(e *raftpb.Entry) error {
	switch e.Type {
	case raftpb.EntryNormal:
		return nil
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			return refuse("undecodable membership change")
		}
		return checkConfChange(cc.AsV2())
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err != nil {
			return refuse("undecodable membership change")
		}
		return checkConfChange(cc)
	}
	return refuse("entry type %v", e.Type)
}

func checkConfChange(cc raftpb.ConfChangeV2) error {
	if len(cc.Changes) != 1 {
		return refuse("membership change of %d members; this cluster changes one at a time", len(cc.Changes))
	}
	c := cc.Changes[0]
	switch c.Type {
	case raftpb.ConfChangeAddNode:
		// The bootstrap's own members carry no address (they are in --peers).
		if len(cc.Context) == 0 {
			break
		}
		if err := validPeerAddr(string(cc.Context)); err != nil {
			return refuse("membership change: %v", err)
		}
	case raftpb.ConfChangeRemoveNode:
	default:
		return refuse("membership change %v", c.Type)
	}
	if c.NodeID == 0 {
		return refuse("membership change of node 0")
	}
	return nil
}

// checkSnapshot: a snapshot must be one this node could install — a
// state machine that decodes, and a membership that has members — or the
// Ready loop would stop on it.
func checkSnapshot(m *raftpb.Message, v raftView) error {
	s := m.Snapshot
	switch {
	case s == nil || s.Metadata.Index == 0:
		return refuse("empty snapshot")
	case s.Metadata.Term > m.Term || s.Metadata.Index > maxTerm:
		return refuse("snapshot %d/%d in term %d", s.Metadata.Index, s.Metadata.Term, m.Term)
	case len(s.Metadata.ConfState.Voters) == 0:
		return refuse("snapshot without voters")
	case s.Metadata.Index <= v.commit:
		return nil // Raft ignores it: nothing is installed
	}
	st, err := kv.Restore(s.Data)
	if err != nil {
		return refuse("snapshot state: %v", err)
	}
	if st.Applied() != s.Metadata.Index {
		return refuse("snapshot state is at %d, its metadata says %d", st.Applied(), s.Metadata.Index)
	}
	return nil
}

// validPeerAddr accepts host:port with a port in 1–65535 and a host that
// is an IP address or a DNS name.
func validPeerAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("peer address %q: want host:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || len(port) > 5 {
		return fmt.Errorf("peer address %q: port must be 1–65535", addr)
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("peer address %q: no host", addr)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("peer address %q: %q is not a host name", addr, host)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("peer address %q: %q is not a host name", addr, host)
			}
		}
	}
	return nil
}
