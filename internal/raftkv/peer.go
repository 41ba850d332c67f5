package raftkv

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/peerlink"
)

// PeerTransport carries Raft messages between processes: one sender
// goroutine per peer drains a queue into batches (length-prefixed
// marshalled messages), so a busy leader sends many appends and heartbeats
// at once. A batch travels over the one link kept to the peer
// (internal/platform/peerlink, GET /raft/link: a framed connection, as
// etcd's rafthttp streams) or, with links off, as one POST /raft/messages.
// The receiver steps a link's batches one at a time, in the order sent. A
// full queue drops messages (Raft resends); a failed send reports the peer
// unreachable to Raft, which then probes it gently instead of streaming
// appends into the void. Snapshots go alone, by POST /raft/snapshot, under
// a larger limit.
type PeerTransport struct {
	// Cut, when set, holds the peers this node is partitioned from:
	// messages to and from them are dropped (`scalelab experiment run linearizability`
	// injects partitions between real processes this way).
	Cut *Cut

	self   uint64
	node   atomic.Pointer[Node]
	peersA *auth.Peers
	client *http.Client
	links  *peerlink.Client // nil: batches by POST
	mu     sync.Mutex
	peers  map[uint64]*peerSender
	lastOK sync.Map // peer ID → time.Time of its last accepted batch
	stop   chan struct{}
	wg     sync.WaitGroup
}

type peerSender struct {
	addr, url, snapURL string
	queue              chan raftpb.Message
}

// LinkPath is where the peer listener takes links over.
const LinkPath = "/raft/link"

// NewPeerTransport sends to the given peer addresses (id → host:port),
// over mutual TLS when the cluster has a key (auth.Peers): batches over
// links when overLinks is set, by POST otherwise.
func NewPeerTransport(self uint64, peers map[uint64]string, pa *auth.Peers, overLinks bool) *PeerTransport {
	t := &PeerTransport{self: self, peers: map[uint64]*peerSender{}, stop: make(chan struct{}), peersA: pa,
		client: &http.Client{Timeout: 5 * time.Second, Transport: pa.Transport(&http.Transport{
			DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
		})}}
	if overLinks {
		t.links = peerlink.NewClient(LinkPath, pa.ClientTLS(), 1<<10)
	}
	for id, addr := range peers {
		t.AddPeer(id, addr)
	}
	return t
}

// Bind tells the transport which node to report failures to.
func (t *PeerTransport) Bind(n *Node) { t.node.Store(n) }

// AddPeer starts sending to a (new) member.
func (t *PeerTransport) AddPeer(id uint64, addr string) {
	if id == t.self {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.peers[id]; ok {
		return
	}
	p := &peerSender{addr: addr, url: t.peersA.URL(addr, "/raft/messages"), snapURL: t.peersA.URL(addr, "/raft/snapshot"),
		queue: make(chan raftpb.Message, 4096)}
	t.peers[id] = p
	t.wg.Add(1)
	go t.sendLoop(id, p)
}

// RemovePeer stops sending to a removed member.
func (t *PeerTransport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.peers, id) // its sender exits with the transport; queued messages are dropped
}

// Send implements Transport.
func (t *PeerTransport) Send(msgs []raftpb.Message) {
	for _, m := range msgs {
		t.mu.Lock()
		p := t.peers[m.To]
		t.mu.Unlock()
		if p == nil || t.Cut.Has(m.To) {
			continue
		}
		select {
		case p.queue <- m:
		default: // full: drop, Raft will resend
		}
	}
}

func (t *PeerTransport) sendLoop(id uint64, p *peerSender) {
	defer t.wg.Done()
	// The batch and the buffer it is encoded into are reused from one send
	// to the next: on the leader this loop runs once per batch per
	// follower, and fresh ones were a fifth of the node's allocation.
	var (
		buf     []byte
		batch   []raftpb.Message
		held    raftpb.Message // a snapshot met while filling a batch: it goes next, alone
		holding bool
	)
	for {
		clear(batch) // drop the previous batch's entries for the GC
		batch = batch[:0]
		var first raftpb.Message
		if holding {
			first, holding = held, false
			held = raftpb.Message{}
		} else {
			select {
			case <-t.stop:
				return
			case first = <-p.queue:
			}
		}
		// A batch stops at 512 messages or batchBytes, so that it stays
		// well under the receiver's body limit. A snapshot goes alone, to
		// its own route with its own (larger) limit.
		batch = append(batch, first)
		size := first.Size()
	more:
		for len(batch) < 512 && size < batchBytes && first.Type != raftpb.MsgSnap {
			select {
			case m := <-p.queue:
				if m.Type == raftpb.MsgSnap {
					held, holding = m, true
					break more
				}
				batch = append(batch, m)
				size += m.Size()
			default:
				break more
			}
		}
		if cap(buf) > 2*batchBytes {
			buf = nil // a snapshot's buffer is not kept for the heartbeats after it
		}
		buf = buf[:0]
		for i := range batch {
			start, n := len(buf), batch[i].Size()
			buf = binary.AppendUvarint(buf, uint64(n))
			buf = slices.Grow(buf, n)
			if _, err := batch[i].MarshalToSizedBuffer(buf[len(buf) : len(buf)+n]); err != nil {
				buf = buf[:start]
				continue
			}
			buf = buf[:len(buf)+n]
		}
		var err error
		switch {
		case first.Type == raftpb.MsgSnap:
			err = t.post(p.snapURL, buf)
		case t.links != nil:
			err = t.sendOverLink(p.addr, buf)
		default:
			err = t.post(p.url, buf)
		}
		if err == nil {
			t.lastOK.Store(id, time.Now())
		}
		n := t.node.Load()
		if n == nil {
			continue
		}
		for _, m := range batch {
			if m.Type == raftpb.MsgSnap {
				status := raft.SnapshotFinish
				if err != nil {
					status = raft.SnapshotFailure
				}
				n.rn.ReportSnapshot(id, status)
			}
		}
		if err != nil {
			n.rn.ReportUnreachable(id)
		}
	}
}

func (t *PeerTransport) post(url string, body []byte) error {
	resp, err := t.client.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("raftkv: peer answered %d", resp.StatusCode)
	}
	return nil
}

// sendOverLink sends a batch over the link to addr; the answer is empty
// when every message was stepped, otherwise the receiver's reason.
func (t *PeerTransport) sendOverLink(addr string, batch []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := t.links.Call(ctx, addr, batch)
	if err != nil {
		return err
	}
	if len(resp) > 0 {
		return fmt.Errorf("raftkv: peer refused the batch: %s", resp)
	}
	return nil
}

// Reachable reports whether peer id accepted a batch within the window.
// On the leader, which sends every peer a heartbeat each tick, it is an
// exact answer to "can I reach it"; Raft's own RecentActive is not,
// because Raft marks a member it has just added active until the next
// quorum check.
func (t *PeerTransport) Reachable(id uint64, window time.Duration) bool {
	at, ok := t.lastOK.Load(id)
	return ok && time.Since(at.(time.Time)) < window
}

// batchBytes is where a sender closes a batch of messages.
const batchBytes = 4 << 20

// ActiveVoters asks the leader (over the peer channel) which voters it has
// heard from recently.
func (t *PeerTransport) ActiveVoters(ctx context.Context, leader uint64, addr string) (map[uint64]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.peersA.URL(addr, "/raft/active"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("raftkv: asking leader %d: %w", leader, err)
	}
	defer resp.Body.Close()
	var out activeBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("raftkv: leader %d answered %d", leader, resp.StatusCode)
	}
	active := map[uint64]bool{}
	for _, id := range out.Active {
		active[id] = true
	}
	return active, nil
}

type activeBody struct {
	Active []uint64 `json:"active"`
}

// Close stops the senders.
func (t *PeerTransport) Close() {
	close(t.stop)
	t.wg.Wait()
	t.client.CloseIdleConnections()
	if t.links != nil {
		t.links.Close()
	}
}

// Cut is a set of peers this node is partitioned from.
type Cut struct {
	mu  sync.Mutex
	ids map[uint64]bool
}

// Has reports whether id is cut off (false for a nil Cut).
func (c *Cut) Has(id uint64) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]
}

// Set replaces the set.
func (c *Cut) Set(ids []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = map[uint64]bool{}
	for _, id := range ids {
		c.ids[id] = true
	}
}

// PeerHandler receives Raft messages for node: batches over links (GET
// LinkPath, when links is not nil), POST /raft/messages (a batch) and POST
// /raft/snapshot (one snapshot message, apart so that it
// can have a larger body limit), each message checked by the node's guard
// before Raft sees it (a refused one is dropped and counted; the rest of
// the batch goes on). GET
// /raft/active answers, on the leader, the voters it has heard from
// recently (the membership API's quorum check). With cut set it also
// serves PUT /debug/cut (a JSON list of peer IDs to cut off; [] heals) and
// drops messages from cut peers. Serve it behind auth.Peers.Guard.
func PeerHandler(n *Node, cut *Cut, links *peerlink.Server) http.Handler {
	mux := http.NewServeMux()
	if cut != nil {
		mux.HandleFunc("PUT /debug/cut", func(w http.ResponseWriter, r *http.Request) {
			var ids []uint64
			if err := json.NewDecoder(r.Body).Decode(&ids); err != nil {
				http.Error(w, "want a JSON list of peer IDs", http.StatusBadRequest)
				return
			}
			cut.Set(ids)
			w.WriteHeader(http.StatusNoContent)
		})
	}
	mux.HandleFunc("GET /raft/active", func(w http.ResponseWriter, r *http.Request) {
		active, ok := n.ActiveVoters()
		if !ok {
			http.Error(w, "not the leader", http.StatusServiceUnavailable)
			return
		}
		var out activeBody
		for id := range active {
			out.Active = append(out.Active, id)
		}
		httpx.WriteJSON(w, http.StatusOK, out)
	})
	messages := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // capped by the guard
		if err != nil {
			http.Error(w, "read", http.StatusRequestEntityTooLarge)
			return
		}
		if status, why := stepBatch(r.Context(), n, cut, body); status != http.StatusNoContent {
			http.Error(w, why, status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	mux.HandleFunc("POST /raft/messages", messages)
	mux.HandleFunc("POST /raft/snapshot", messages)
	if links != nil {
		mux.Handle("GET "+LinkPath, links)
	}
	return mux
}

// NewLinkServer serves the node's side of its peers' links: batches of at
// most maxBatch bytes, stepped one at a time in the order they came (one
// request in flight per link). Mount it with PeerHandler; close it before
// stopping the node.
func NewLinkServer(n *Node, cut *Cut, maxBatch int, logger *slog.Logger) *peerlink.Server {
	lim := peerlink.DefaultLimits(maxBatch)
	lim.MaxInFlight = 1
	return peerlink.NewServer(func(ctx context.Context, batch []byte) []byte {
		if status, why := stepBatch(ctx, n, cut, batch); status != http.StatusNoContent {
			return []byte(why)
		}
		return nil
	}, lim, logger)
}

// stepBatch steps every message of a batch into n, each checked by the
// node's guard first (a refused one is dropped and counted; the rest of
// the batch goes on). It answers 204, or the status and reason that stopped
// it.
func stepBatch(ctx context.Context, n *Node, cut *Cut, body []byte) (int, string) {
	rd := bytes.NewReader(body)
	for rd.Len() > 0 {
		l, err := binary.ReadUvarint(rd)
		if err != nil || l > uint64(rd.Len()) {
			return http.StatusBadRequest, "malformed batch"
		}
		b := body[len(body)-rd.Len():][:l]
		_, _ = rd.Seek(int64(l), io.SeekCurrent)
		var m raftpb.Message
		if err := m.Unmarshal(b); err != nil {
			return http.StatusBadRequest, "malformed message"
		}
		if cut.Has(m.From) {
			continue
		}
		if err := n.Step(ctx, m); err != nil && !errors.Is(err, errBadMessage) {
			return http.StatusServiceUnavailable, "stopped"
		}
	}
	return http.StatusNoContent, ""
}
