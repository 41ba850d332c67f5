package raftkv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// AddressBook is where each member's Raft peer address is known: the
// --peers of a bootstrap, the answer to a join, and every applied
// membership change (whose context carries the new member's address). It
// is kept in DATA/peers.json so that a restarted node can reach members
// that joined after the bootstrap, even once the log entries that added
// them are compacted away.
type AddressBook struct {
	mu    sync.Mutex
	path  string
	addrs map[uint64]string
	tr    *PeerTransport
}

// LoadAddressBook reads DATA/peers.json (if any) merged with initial.
func LoadAddressBook(dir string, initial map[uint64]string) (*AddressBook, error) {
	b := &AddressBook{path: filepath.Join(dir, "peers.json"), addrs: map[uint64]string{}}
	if raw, err := os.ReadFile(b.path); err == nil {
		var saved map[uint64]string
		if err := json.Unmarshal(raw, &saved); err != nil {
			return nil, fmt.Errorf("raftkv: %s: %w", b.path, err)
		}
		for id, a := range saved {
			b.addrs[id] = a
		}
	}
	for id, a := range initial {
		b.addrs[id] = a
	}
	return b, b.save()
}

// Has reports whether id is in the book.
func (b *AddressBook) Has(id uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.addrs[id]
	return ok
}

// Addrs returns a copy of the book.
func (b *AddressBook) Addrs() map[uint64]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[uint64]string, len(b.addrs))
	for id, a := range b.addrs {
		out[id] = a
	}
	return out
}

func (b *AddressBook) save() error {
	if err := os.MkdirAll(filepath.Dir(b.path), 0o755); err != nil {
		return err
	}
	raw, _ := json.Marshal(b.addrs)
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, b.path)
}

// OnConfChange keeps the book and the transport in step with membership.
func (b *AddressBook) OnConfChange(t raftpb.ConfChangeType, id uint64, context []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch t {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if len(context) > 0 {
			b.addrs[id] = string(context)
			if b.tr != nil {
				b.tr.AddPeer(id, string(context))
			}
		}
	case raftpb.ConfChangeRemoveNode:
		delete(b.addrs, id)
		if b.tr != nil {
			b.tr.RemovePeer(id)
		}
	}
	_ = b.save()
}

// MemberAddr is one member in a membership answer.
type MemberAddr struct {
	ID       uint64 `json:"id"`
	PeerAddr string `json:"peer_addr,omitempty"`
}

func sortedMembers(voters []uint64, addrs map[uint64]string) []MemberAddr {
	out := make([]MemberAddr, 0, len(voters))
	for _, id := range voters {
		out = append(out, MemberAddr{ID: id, PeerAddr: addrs[id]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// checkReconfig is etcd's strict reconfiguration check (its
// --strict-reconfig-check, on by default): a change may not leave the
// cluster with fewer active voters than its quorum. Adding counts the
// newcomer as not yet active — it has not started, or has just — so 3
// healthy voters may add a fourth (3 ≥ 3) but not, with that one still
// absent, a fifth and a sixth; removing counts the voters that remain.
// A removal of a node that is not a voter is ErrNotMember.
func checkReconfig(voters []uint64, active map[uint64]bool, add bool, id uint64) error {
	isVoter := false
	for _, v := range voters {
		isVoter = isVoter || v == id
	}
	after := len(voters) + 1
	if !add {
		if !isVoter {
			return ErrNotMember
		}
		after = len(voters) - 1
		if after == 0 {
			return fmt.Errorf("%w: node %d is the last voter", ErrUnsafeReconfig, id)
		}
	}
	live := 0
	for _, v := range voters {
		if active[v] && (add || v != id) {
			live++
		}
	}
	if add && len(voters) == 1 && live == 1 {
		return nil // growing a one-node cluster: etcd allows it too (a second node is how it is restored)
	}
	if quorum := after/2 + 1; live < quorum {
		return fmt.Errorf("%w: %d of the %d voters after the change would be active; a quorum is %d",
			ErrUnsafeReconfig, live, after, quorum)
	}
	return nil
}

// ErrNotMember is a removal of a node that is not a voter.
var ErrNotMember = errors.New("raftkv: not a member")

// ErrUnsafeReconfig is a membership change that would lose the quorum.
var ErrUnsafeReconfig = errors.New("raftkv: the change would leave too few active voters")

// ActiveVoters is, on the leader, the voters it has heard from within the
// last election timeout (itself included); ok is false elsewhere.
func (n *Node) ActiveVoters() (active map[uint64]bool, ok bool) {
	st := n.rn.Status()
	if st.RaftState != raft.StateLeader {
		return nil, false
	}
	active = map[uint64]bool{n.cfg.ID: true}
	for id, p := range st.Progress {
		if p.RecentActive && (n.cfg.Reachable == nil || n.cfg.Reachable(id)) {
			active[id] = true
		}
	}
	return active, true
}

// Members returns the current voters.
func (n *Node) Members() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]uint64(nil), n.confState.Voters...)
}

// ChangeMembership adds (with the peer address in context) or removes a
// voter, one at a time as Raft's single-server changes require, and waits
// until the change is applied here.
func (n *Node) ChangeMembership(ctx context.Context, add bool, id uint64, peerAddr string) error {
	if n.Leader() == 0 {
		return ErrNoLeader
	}
	cc := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id, Context: []byte(peerAddr)}
	if !add {
		cc.Type = raftpb.ConfChangeRemoveNode
	}
	if err := n.rn.ProposeConfChange(ctx, cc); err != nil {
		return err
	}
	for {
		present := false
		for _, v := range n.Members() {
			present = present || v == id
		}
		if present == add {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopped:
			return ErrStopped
		case <-time.After(10 * time.Millisecond):
		}
	}
}
