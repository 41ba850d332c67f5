package raftkv

import (
	"errors"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

// A follower (node 2 of 1, 2, 3) in term 5 whose log holds entries 1–10
// (terms 1,1,1,2,2,3,3,3,5,5), committed to 8.
func testView() raftView {
	terms := []uint64{0, 1, 1, 1, 2, 2, 3, 3, 3, 5, 5}
	return raftView{
		self: 2, term: 5, commit: 8, lastIndex: 10,
		termAt: func(i uint64) (uint64, bool) {
			if i == 0 || i >= uint64(len(terms)) {
				return 0, false
			}
			return terms[i], true
		},
		member: func(id uint64) bool { return id >= 1 && id <= 3 },
	}
}

func entries(from uint64, terms ...uint64) []raftpb.Entry {
	out := make([]raftpb.Entry, len(terms))
	for i, t := range terms {
		out[i] = raftpb.Entry{Index: from + uint64(i), Term: t}
	}
	return out
}

func confEntry(t *testing.T, cc raftpb.ConfChange) raftpb.Entry {
	t.Helper()
	b, err := cc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raftpb.Entry{Type: raftpb.EntryConfChange, Data: b, Index: 11, Term: 5}
}

func snapshotAt(t *testing.T, index uint64) *raftpb.Snapshot {
	t.Helper()
	st := kv.New()
	st.Apply(index, kv.Command{Op: kv.OpPut, Key: []byte("k"), Value: []byte("v"), IfRevision: kv.Unconditional})
	return &raftpb.Snapshot{Data: st.Snapshot(), Metadata: raftpb.SnapshotMetadata{
		Index: index, Term: 5, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}},
	}}
}

func TestGuardAdmitsWhatCorrectPeersSend(t *testing.T) {
	v := testView()
	for name, m := range map[string]raftpb.Message{
		"heartbeat at our last index":    {Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 5, Commit: 10},
		"heartbeat, newer term":          {Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 6, Commit: 3},
		"an old leader's delayed append": {Type: raftpb.MsgApp, From: 3, To: 2, Term: 4, Index: 6, LogTerm: 3, Entries: entries(7, 4, 4)},
		"append of new entries":          {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 5, Commit: 12, Entries: entries(11, 5, 5)},
		"append over uncommitted":        {Type: raftpb.MsgApp, From: 3, To: 2, Term: 6, Index: 8, LogTerm: 3, Entries: entries(9, 6, 6, 6)},
		"append repeating committed":     {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 5, LogTerm: 2, Entries: entries(6, 3, 3, 3, 5)},
		"append after an entry we lack":  {Type: raftpb.MsgApp, From: 1, To: 2, Term: 6, Index: 0, LogTerm: 0, Entries: entries(1, 6)},
		"empty append (probe)":           {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 5},
		"append response":                {Type: raftpb.MsgAppResp, From: 3, To: 2, Term: 5, Index: 10},
		"rejected append response":       {Type: raftpb.MsgAppResp, From: 3, To: 2, Term: 5, Index: 99, Reject: true, RejectHint: 4},
		"vote request far behind":        {Type: raftpb.MsgVote, From: 3, To: 2, Term: 5 + maxTermAhead},
		"pre-vote":                       {Type: raftpb.MsgPreVote, From: 3, To: 2, Term: 6, Index: 10, LogTerm: 5},
		"old term (raft ignores it)":     {Type: raftpb.MsgHeartbeat, From: 3, To: 2, Term: 1},
		"forwarded proposal":             {Type: raftpb.MsgProp, From: 3, To: 2, Entries: []raftpb.Entry{{Data: []byte("12345678x")}}},
		"snapshot":                       {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 5, Snapshot: snapshotAt(t, 20)},
		"stale snapshot":                 {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 5, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 7, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1}}}}},
		"read index":                     {Type: raftpb.MsgReadIndex, From: 3, To: 2, Entries: []raftpb.Entry{{Data: []byte("ctx")}}},
		"transfer":                       {Type: raftpb.MsgTimeoutNow, From: 1, To: 2, Term: 5},
		"membership add":                 {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: 4, Context: []byte("10.0.0.4:7401")})}},
		"membership add by name":         {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 5, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: 4, Context: []byte("node-4.example:7401")})}},
		"membership remove":              {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 3})}},
	} {
		if err := checkMessage(&m, v); err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
	}
}

func TestGuardRefusesWhatCannotBeRight(t *testing.T) {
	v := testView()
	bogusSnapshot := snapshotAt(t, 20)
	bogusSnapshot.Data = []byte("not a snapshot")
	mismatched := snapshotAt(t, 20)
	mismatched.Metadata.Index = 30
	for name, m := range map[string]raftpb.Message{
		// The observed attacks.
		"heartbeat commit past our log": {Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 5, Commit: 11},
		"term near 2^64":                {Type: raftpb.MsgHeartbeat, From: 1, To: 2, Term: 1<<64 - 2},
		"term far ahead":                {Type: raftpb.MsgVote, From: 3, To: 2, Term: 6 + maxTermAhead},
		// Senders.
		"from an unknown node": {Type: raftpb.MsgHeartbeat, From: 9, To: 2, Term: 5},
		"from node 0":          {Type: raftpb.MsgHeartbeat, From: 0, To: 2, Term: 5},
		"from itself":          {Type: raftpb.MsgHeartbeat, From: 2, To: 2, Term: 5},
		"to another node":      {Type: raftpb.MsgHeartbeat, From: 1, To: 3, Term: 5},
		"local message":        {Type: raftpb.MsgHup, From: 1, To: 2},
		"storage message":      {Type: raftpb.MsgStorageAppend, From: 1, To: 2},
		// Appends.
		"append rewriting committed": {Type: raftpb.MsgApp, From: 1, To: 2, Term: 6, Index: 6, LogTerm: 3, Entries: entries(7, 6, 6)},
		"append with a gap":          {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 5, Entries: entries(12, 5)},
		"append terms go down":       {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 5, Entries: entries(11, 5, 4)},
		"append entry beyond term":   {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 5, Entries: entries(11, 7)},
		"append prev term beyond":    {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 6},
		"ack past our log":           {Type: raftpb.MsgAppResp, From: 3, To: 2, Term: 5, Index: 11},
		// Membership entries.
		"membership garbage":   {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{{Type: raftpb.EntryConfChange, Data: []byte{0xff, 0xff, 0xff}}}},
		"membership bad addr":  {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: 4, Context: []byte("not a host port")})}},
		"membership port 0":    {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: 4, Context: []byte("10.0.0.4:0")})}},
		"membership of node 0": {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: 0})}},
		"membership learner":   {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 4, Context: []byte("a:1")})}},
		"membership in append": {Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Index: 10, LogTerm: 5, Entries: []raftpb.Entry{confEntry(t, raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: 4, Context: []byte("x")})}},
		"unknown entry type":   {Type: raftpb.MsgProp, From: 1, To: 2, Entries: []raftpb.Entry{{Type: 7}}},
		// Snapshots.
		"no snapshot":              {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 5},
		"snapshot at 0":            {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 5, Snapshot: &raftpb.Snapshot{}},
		"snapshot without voters":  {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 5, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 20, Term: 5}}},
		"snapshot of garbage":      {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 5, Snapshot: bogusSnapshot},
		"snapshot index lies":      {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 5, Snapshot: mismatched},
		"snapshot from the future": {Type: raftpb.MsgSnap, From: 1, To: 2, Term: 4, Snapshot: snapshotAt(t, 20)},
	} {
		if err := checkMessage(&m, v); !errors.Is(err, errBadMessage) {
			t.Errorf("%s: admitted (%v)", name, err)
		}
	}
}

func TestValidPeerAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:7401": true, "[::1]:7401": true, "node-1.example.com:7401": true, "n1:1": true, "10.1.2.3:65535": true,
		"not a host port": false, "127.0.0.1": false, ":7401": false, "h:0": false, "h:65536": false, "h:018082": false,
		"h:-1": false, "h:x": false, "bad_host:1": false, "a..b:1": false, "h/x:1": false, "": false,
	} {
		if err := validPeerAddr(addr); (err == nil) != ok {
			t.Errorf("validPeerAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}
