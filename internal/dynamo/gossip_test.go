package dynamo

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/hashicorp/memberlist"
)

func newTestGossip() *Gossip {
	return &Gossip{log: slog.New(slog.DiscardHandler), members: map[string]Member{}, leaving: map[string]bool{}}
}

func metaOf(t *testing.T, leaving bool) []byte {
	t.Helper()
	b, err := json.Marshal(nodeMeta{HTTP: "127.0.0.1:1", Peer: "127.0.0.1:2", Leaving: leaving})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// How memberlist's callbacks map onto member states: a departure counts as
// a leave when the flag arrived first or when the node's own farewell did
// (memberlist's StateLeft), as a death otherwise; a node that comes back
// without the flag starts a new life.
func TestGossipStates(t *testing.T) {
	type event struct {
		call    string // join, update, leave
		leaving bool   // the flag in the node's metadata
		state   memberlist.NodeStateType
	}
	cases := []struct {
		name   string
		events []event
		want   MemberState
	}{
		{"alive", []event{{"join", false, memberlist.StateAlive}}, Alive},
		{"announced leave", []event{{"join", false, memberlist.StateAlive}, {"update", true, memberlist.StateAlive}}, Leaving},
		{"flag then farewell", []event{{"join", false, memberlist.StateAlive}, {"update", true, memberlist.StateAlive}, {"leave", true, memberlist.StateLeft}}, Left},
		{"flag then found dead", []event{{"join", false, memberlist.StateAlive}, {"update", true, memberlist.StateAlive}, {"leave", true, memberlist.StateDead}}, Left},
		// The flag was missed, but the node's own farewell arrived.
		{"farewell without the flag", []event{{"join", false, memberlist.StateAlive}, {"leave", false, memberlist.StateLeft}}, Left},
		{"death", []event{{"join", false, memberlist.StateAlive}, {"leave", false, memberlist.StateDead}}, Dead},
		// Gossip can carry an older alive without the flag after the
		// announcement: still leaving.
		{"stale alive after the flag", []event{{"join", false, memberlist.StateAlive}, {"update", true, memberlist.StateAlive}, {"update", false, memberlist.StateAlive}}, Leaving},
		{"back after a leave", []event{{"join", false, memberlist.StateAlive}, {"update", true, memberlist.StateAlive}, {"leave", true, memberlist.StateLeft}, {"join", false, memberlist.StateAlive}}, Alive},
		{"back after a death", []event{{"join", false, memberlist.StateAlive}, {"leave", false, memberlist.StateDead}, {"join", false, memberlist.StateAlive}}, Alive},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newTestGossip()
			for _, e := range c.events {
				n := &memberlist.Node{Name: "p4", Meta: metaOf(t, e.leaving), State: e.state}
				switch e.call {
				case "join":
					g.NotifyJoin(n)
				case "update":
					g.NotifyUpdate(n)
				case "leave":
					g.NotifyLeave(n)
				}
			}
			m, ok := g.Member("p4")
			if !ok || m.State != c.want {
				t.Fatalf("state %q (known %v), want %q", m.State, ok, c.want)
			}
			if m.Addr != "127.0.0.1:1" || m.PeerAddr != "127.0.0.1:2" {
				t.Fatalf("addresses %q %q not taken from the metadata", m.Addr, m.PeerAddr)
			}
		})
	}
}

// Push/pull carries the leave verdicts: a member that found a node dead
// takes the "left" of a member that heard it leave, and nothing else
// moves.
func TestGossipLeftVerdictsConverge(t *testing.T) {
	heard := newTestGossip()
	heard.NotifyJoin(&memberlist.Node{Name: "p4", Meta: metaOf(t, false)})
	heard.NotifyLeave(&memberlist.Node{Name: "p4", Meta: metaOf(t, false), State: memberlist.StateLeft})
	heard.NotifyJoin(&memberlist.Node{Name: "p5", Meta: metaOf(t, false)})
	heard.NotifyLeave(&memberlist.Node{Name: "p5", Meta: metaOf(t, false), State: memberlist.StateLeft})
	heard.NotifyJoin(&memberlist.Node{Name: "p6", Meta: metaOf(t, false)})
	heard.NotifyLeave(&memberlist.Node{Name: "p6", Meta: metaOf(t, false), State: memberlist.StateLeft})

	probed := newTestGossip()
	probed.NotifyJoin(&memberlist.Node{Name: "p4", Meta: metaOf(t, false)})
	probed.NotifyLeave(&memberlist.Node{Name: "p4", Meta: metaOf(t, false), State: memberlist.StateDead})
	probed.NotifyJoin(&memberlist.Node{Name: "p5", Meta: metaOf(t, false)}) // back, in a new life
	// p6 is unknown here: a verdict does not make a member.

	state := heard.LocalState(false)
	for _, bad := range [][]byte{nil, []byte("{"), []byte(`{"p4":1}`), []byte(`[1,2]`)} {
		probed.MergeRemoteState(bad, false)
		if m, _ := probed.Member("p4"); m.State != Dead {
			t.Fatalf("malformed state %q moved p4 to %q", bad, m.State)
		}
	}
	probed.MergeRemoteState(state, false)
	want := map[string]MemberState{"p4": Left, "p5": Alive}
	for name, st := range want {
		if m, _ := probed.Member(name); m.State != st {
			t.Errorf("%s: %q, want %q", name, m.State, st)
		}
	}
	if _, ok := probed.Member("p6"); ok {
		t.Error("a verdict about an unknown node made it a member")
	}

	// More names than a member's state can hold: ignored whole.
	again := newTestGossip()
	again.NotifyJoin(&memberlist.Node{Name: "p4", Meta: metaOf(t, false)})
	again.NotifyLeave(&memberlist.Node{Name: "p4", Meta: metaOf(t, false), State: memberlist.StateDead})
	names := []string{"p4"}
	for i := 0; i < maxLeftState; i++ {
		names = append(names, fmt.Sprint("x", i))
	}
	big, _ := json.Marshal(names)
	again.MergeRemoteState(big, false)
	if m, _ := again.Member("p4"); m.State != Dead {
		t.Fatalf("an oversized state moved p4 to %q", m.State)
	}
}
