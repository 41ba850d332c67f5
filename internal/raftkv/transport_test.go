package raftkv

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/scalelab/scalelab/internal/platform/auth"
)

// A snapshot travels alone, on its own route (its own body limit), and
// the messages queued around it go in batches on the other.
func TestTransportSendsSnapshotsApart(t *testing.T) {
	var mu sync.Mutex
	var got []string
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var types []string
		rd := bytes.NewReader(body)
		for rd.Len() > 0 {
			l, _ := binary.ReadUvarint(rd)
			b := make([]byte, l)
			_, _ = io.ReadFull(rd, b)
			var m raftpb.Message
			_ = m.Unmarshal(b)
			types = append(types, m.Type.String())
		}
		mu.Lock()
		got = append(got, r.URL.Path+" "+strings.Join(types, ","))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		arrived <- struct{}{}
	}))
	defer srv.Close()
	peers, _ := auth.NewPeers(nil, "test")
	tr := NewPeerTransport(1, nil, peers, false)
	defer tr.Close()
	// Queue everything before the sender starts, so that it finds a batch.
	tr.AddPeer(2, strings.TrimPrefix(srv.URL, "http://"))
	snap := &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 5, Term: 1}}
	tr.Send([]raftpb.Message{
		{Type: raftpb.MsgApp, To: 2}, {Type: raftpb.MsgApp, To: 2},
		{Type: raftpb.MsgSnap, To: 2, Snapshot: snap},
		{Type: raftpb.MsgHeartbeat, To: 2},
	})
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		all := strings.Join(got, " | ")
		n := strings.Count(all, "Msg")
		mu.Unlock()
		if n == 4 {
			if !strings.Contains(all, "/raft/snapshot MsgSnap") || strings.Contains(all, "/raft/messages MsgSnap") ||
				strings.Contains(all, ",MsgSnap") || strings.Contains(all, "MsgSnap,") {
				t.Fatalf("requests: %s", all)
			}
			return
		}
		select {
		case <-arrived:
		case <-deadline:
			t.Fatalf("not every message arrived: %s", all)
		}
	}
}

// Batches travel over a link to the peer's link server; a malformed batch
// is answered with the reason and steps nothing.
func TestTransportSendsBatchesOverLinks(t *testing.T) {
	cut := &Cut{}
	cut.Set([]uint64{1}) // the receiver drops what node 1 sends: no Raft node is needed behind it
	links := NewLinkServer(nil, cut, 1<<20, nil)
	peers, _ := auth.NewPeers(nil, "test")
	srv := httptest.NewServer(PeerHandler(nil, cut, links))
	defer srv.Close()
	defer links.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	tr := NewPeerTransport(1, map[uint64]string{2: addr}, peers, true)
	defer tr.Close()
	tr.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}, {Type: raftpb.MsgApp, From: 1, To: 2}})
	deadline := time.Now().Add(10 * time.Second)
	for !tr.Reachable(2, time.Minute) {
		if time.Now().After(deadline) {
			t.Fatal("the batch was not accepted over the link")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if links.Links() != 1 {
		t.Fatalf("%d links, want 1", links.Links())
	}
	for _, bad := range [][]byte{{0xff}, {5, 1, 2}, {2, 0xff, 0xff}} {
		resp, err := tr.links.Call(t.Context(), addr, bad)
		if err != nil || !strings.HasPrefix(string(resp), "malformed") {
			t.Fatalf("malformed batch %x: %q %v", bad, resp, err)
		}
	}
}
