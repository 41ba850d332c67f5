package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/quorum"
	"github.com/scalelab/scalelab/internal/dynamo/ring"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// WriteRequest is a put or a delete as a client asks for it.
type WriteRequest struct {
	Context   vclock.Clock // from an earlier read: the versions this write replaces
	Value     []byte
	Tombstone bool // a delete
	W         int  // 0: the node's default
	forwarded bool // already forwarded once: coordinate here whatever the ring says
}

func (n *Node) unavailable(op string, answered, needed int) error {
	n.metrics.quorumFailures.Add(1)
	letter := "w"
	if op == "read" {
		letter = "r"
	}
	return apperr.E(apperr.Unavailable, "%s reached %d of the %d replicas it needs (N=%d); try again or lower ?%s=",
		op, answered, needed, n.cfg.N, letter)
}

func (n *Node) checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return apperr.E(apperr.Invalid, "empty key")
	case len(key) > n.cfg.MaxKey:
		return apperr.E(apperr.Invalid, "key is %d bytes; the limit is %d", len(key), n.cfg.MaxKey)
	}
	return nil
}

// Put coordinates a write (or, with Tombstone, a delete) and returns the
// new version's clock: the causal context for the client's next write.
//
// Any node accepts it. A node that holds a replica of the key (one of its
// sloppy-quorum placements) coordinates it; another node forwards it to
// the first placement, because the coordinator stamps the version from its
// own replica's state (the Dynamo paper, section 4.5: "any of the top N
// nodes in the preference list").
func (n *Node) Put(ctx context.Context, key []byte, req WriteRequest) (vclock.Clock, error) {
	if err := n.checkKey(key); err != nil {
		return nil, err
	}
	if len(req.Value) > n.cfg.MaxValue {
		return nil, apperr.E(apperr.Invalid, "value is %d bytes; the limit is %d", len(req.Value), n.cfg.MaxValue)
	}
	if req.W == 0 {
		req.W = n.cfg.W
	}
	if req.W < 1 || req.W > n.cfg.N {
		return nil, apperr.E(apperr.Invalid, "w=%d: want 1 ≤ w ≤ N=%d", req.W, n.cfg.N)
	}
	places := n.placements(key, req.W)
	if !req.forwarded && !isPlacement(places, n.cfg.ID) {
		for _, p := range places {
			clock, err := n.forward(ctx, p.Node, key, req)
			if err == nil || !errors.Is(err, ErrUnreachable) {
				return clock, err
			}
			// That node did not answer: the next placement coordinates.
		}
	}
	return n.coordinate(ctx, key, places, req)
}

var errNotPlacement = errors.New("not a placement")

func isPlacement(places []ring.Placement, node string) bool {
	for _, p := range places {
		if p.Node == node {
			return true
		}
	}
	return false
}

func (n *Node) forward(ctx context.Context, to string, key []byte, req WriteRequest) (vclock.Clock, error) {
	n.metrics.forwarded.Add(1)
	e := newRequest(opCoordinate)
	e.bytes(key)
	e.bytes(req.Context.MarshalBinary())
	e.bool(req.Tombstone)
	e.bytes(req.Value)
	e.uint(uint64(req.W))
	d, err := n.call(ctx, to, e.b)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) {
			return nil, remoteToApp(re)
		}
		return nil, err
	}
	clock, err := vclock.Unmarshal(d.bytes(1 << 20))
	if err != nil || d.done() != nil {
		return nil, fmt.Errorf("dynamo: forwarded write: bad answer from %s", to)
	}
	return clock, nil
}

// remoteToApp turns a peer's refusal back into the error it was.
func remoteToApp(re *RemoteError) error {
	code := apperr.Internal
	switch re.Status {
	case 400:
		code = apperr.Invalid
	case 503:
		code = apperr.Unavailable
	}
	return apperr.E(code, "%s", re.Message)
}

type answer struct {
	node     string
	versions []vclock.Version
	err      error
}

func (n *Node) coordinate(ctx context.Context, key []byte, places []ring.Placement, req WriteRequest) (vclock.Clock, error) {
	var hintFor string
	inPlaces := false
	for _, p := range places {
		if p.Node == n.cfg.ID {
			hintFor, inPlaces = p.HintFor, true
		}
	}
	local, err := n.store.Get(key)
	if err != nil {
		return nil, err
	}
	claim, err := n.verifyContext(ctx, key, req.Context, local)
	if err != nil {
		n.metrics.contextsRefused.Add(1)
		return nil, err
	}
	if err := n.checkLimits(local, claim, len(req.Value)); err != nil {
		n.metrics.limitsRefused.Add(1)
		return nil, err
	}
	now := n.cfg.Now()
	ctxClock := claim.Prune(n.cfg.Prune, now)
	made := vclock.Version{
		Dot:     n.store.Stamp(key, n.store.Actor(n.cfg.ID), ctxClock, now),
		Context: ctxClock, Value: req.Value, Tombstone: req.Tombstone,
	}
	if hintFor != "" {
		n.metrics.hintsStored.Add(1)
	}
	q, err := quorum.NewWrite(req.W, n.cfg.N)
	if err != nil {
		return nil, apperr.E(apperr.Invalid, "%s", err.Error())
	}
	for i := len(places); i < n.cfg.N; i++ {
		q.Fail(fmt.Sprint("\x00missing", i)) // fewer healthy nodes than N
	}
	answers := make(chan answer, n.cfg.N*2+1)
	tried, failed := map[string]bool{n.cfg.ID: true}, map[string]bool{}
	// This node's own copy is written while the others are sent theirs: it
	// counts towards W like any replica's once committed (when this node
	// is a placement), and is kept in any case.
	outstanding, localDone := 1, false
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		_, err := n.store.Commit(key, hintFor, made)
		if err != nil {
			n.log.Error("local write failed", "err", err)
		}
		if !inPlaces && err == nil {
			err = errNotPlacement
		}
		answers <- answer{node: n.cfg.ID, err: err}
	}()
	encoded := vclock.AppendVersions(nil, []vclock.Version{made})
	send := func(p ring.Placement) {
		tried[p.Node] = true
		if p.HintFor != "" {
			n.metrics.hintsStored.Add(1)
		}
		outstanding++
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.RequestTimeout)
			defer cancel()
			answers <- answer{node: p.Node, err: n.replicate(cctx, p.Node, key, p.HintFor, encoded)}
		}()
	}
	for _, p := range places {
		if !tried[p.Node] {
			send(p)
		}
	}
	for q.State() == quorum.Pending && outstanding > 0 {
		a := <-answers
		outstanding--
		switch {
		case a.err == nil:
			q.Ack(a.node)
		case a.node == n.cfg.ID:
			if inPlaces {
				q.Fail(a.node)
			}
		case !n.sendToStandIn(key, tried, markFailed(failed, a.node), send):
			q.Fail(a.node)
		}
		localDone = localDone || a.node == n.cfg.ID
	}
	// A refusal says how many replicas took the write: wait for this
	// node's own copy (a local commit) so that it is counted.
	for q.State() == quorum.Failed && !localDone && outstanding > 0 {
		a := <-answers
		outstanding--
		if a.err == nil {
			q.Ack(a.node)
		}
		localDone = a.node == n.cfg.ID
	}
	if q.State() != quorum.Succeeded {
		return nil, n.unavailable("write", q.Acks(), req.W)
	}
	return made.Clock(), nil
}

// sendToStandIn is sloppy quorum within one request: a replica failed to
// answer, so the request goes to the first placement not yet tried —
// counting the nodes that failed in this request as down, whatever the
// failure detector concluded from one answer — a stand-in carrying a hint
// for the node it replaces. It reports whether there was one.
func (n *Node) sendToStandIn(key []byte, tried, failed map[string]bool, send func(ring.Placement)) bool {
	usable := func(node string) bool { return !failed[node] && n.healthy(node) }
	for _, p := range n.Ring().Placements(key, n.cfg.N, usable) {
		if !tried[p.Node] {
			send(p)
			return true
		}
	}
	return false
}

func markFailed(failed map[string]bool, node string) map[string]bool {
	failed[node] = true
	return failed
}

// placements is where a request for key goes: the sloppy-quorum
// placements of the nodes the failure detector trusts, widened — when they
// are fewer than the request needs — by the distrusted nodes of the
// preference list that gossip still holds alive. A node the detector
// routes around may only have been slow; asking it costs a request,
// answering 503 without asking costs the client its read or write.
func (n *Node) placements(key []byte, needed int) []ring.Placement {
	r := n.Ring()
	places := r.Placements(key, n.cfg.N, n.healthy)
	if len(places) >= needed {
		return places
	}
	alive := func(node string) bool {
		m, ok := n.members.Member(node)
		return node == n.cfg.ID || ok && m.State == Alive
	}
	for _, p := range r.Placements(key, n.cfg.N, alive) {
		if len(places) >= n.cfg.N {
			break
		}
		if p.HintFor == "" && !isPlacement(places, p.Node) {
			places = append(places, p)
		}
	}
	return places
}

// localFirst moves this node's placement, if it has one, to the front: a
// read that asks it first asks one replica fewer over the network.
func localFirst(places []ring.Placement, self string) []ring.Placement {
	for i, p := range places {
		if p.Node == self && p.HintFor == "" {
			out := append([]ring.Placement{p}, places[:i]...)
			return append(out, places[i+1:]...)
		}
	}
	return places
}

func replicaPut(key []byte, hintFor string, versions []vclock.Version) []byte {
	return replicaPutEncoded(key, hintFor, vclock.AppendVersions(nil, versions))
}

func replicaPutEncoded(key []byte, hintFor string, encoded []byte) []byte {
	e := newRequest(opReplicaPut)
	e.bytes(key)
	e.str(hintFor)
	e.b = append(e.b, encoded...)
	return e.b
}

// Get reads key from R replicas (r=0: the node's default) and returns the
// reconciled versions: one, siblings, or none. Tombstones are included; the
// HTTP layer hides them.
//
// It asks R replicas of the preference list first — this node first when
// it holds one, so that R=1 is a local read — and the others only when
// one of those fails, or when no quorum has formed after SpeculativeRead
// (Cassandra's speculative retry; the Dynamo paper's coordinator asks all
// N at once, which SpeculativeRead 0 restores). R + W > N still holds for
// the replicas asked. Replicas that answered with less than the result
// are repaired in the background, including those that answer late;
// replicas not asked are left to anti-entropy.
func (n *Node) Get(ctx context.Context, key []byte, r int) ([]vclock.Version, error) {
	if err := n.checkKey(key); err != nil {
		return nil, err
	}
	if r == 0 {
		r = n.cfg.R
	}
	q, err := quorum.NewRead(r, n.cfg.N)
	if err != nil {
		return nil, apperr.E(apperr.Invalid, "r=%d: want 1 ≤ r ≤ N=%d", r, n.cfg.N)
	}
	places := localFirst(n.placements(key, r), n.cfg.ID)
	for i := len(places); i < n.cfg.N; i++ {
		q.Fail(fmt.Sprint("\x00missing", i))
	}
	hints := map[string]string{}
	answers := make(chan answer, n.cfg.N*2)
	msg := newRequest(opReplicaGet)
	msg.bytes(key)
	tried, failed := map[string]bool{}, map[string]bool{}
	pending := 0
	send := func(p ring.Placement) {
		tried[p.Node] = true
		hints[p.Node] = p.HintFor
		pending++
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			d, err := n.call(context.WithoutCancel(ctx), p.Node, msg.b)
			var vs []vclock.Version
			if err == nil {
				vs = d.versions()
				err = d.done()
			}
			answers <- answer{node: p.Node, versions: vs, err: err}
		}()
	}
	next := 0 // places[next:] are not asked yet
	askNext := func() bool {
		if next == len(places) {
			return false
		}
		send(places[next])
		next++
		return true
	}
	for next < r && askNext() {
	}
	if n.cfg.SpeculativeRead <= 0 {
		for askNext() {
		}
	}
	var speculate <-chan time.Time
	if next < len(places) {
		t := time.NewTimer(n.cfg.SpeculativeRead)
		defer t.Stop()
		speculate = t.C
	}
	for q.State() == quorum.Pending && pending > 0 {
		select {
		case a := <-answers:
			pending--
			switch {
			case a.err == nil:
				q.Answer(a.node, a.versions)
			case askNext():
				markFailed(failed, a.node)
			case !n.sendToStandIn(key, tried, markFailed(failed, a.node), send):
				q.Fail(a.node)
			}
		case <-speculate:
			speculate = nil
			for askNext() {
			}
		}
	}
	if q.State() != quorum.Succeeded {
		return nil, n.unavailable("read", q.Answers(), r)
	}
	result := q.Result()
	// Read repair: wait for the stragglers in the background, then send
	// the reconciled result to every replica that had less.
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		for ; pending > 0; pending-- {
			a := <-answers
			if a.err == nil {
				q.Answer(a.node, a.versions)
			}
		}
		merged := q.Result()
		for _, node := range q.Repairs() {
			n.metrics.readRepairs.Add(1)
			if _, err := n.call(n.ctx, node, replicaPut(key, hints[node], merged)); err != nil {
				n.log.Debug("read repair failed", "to", node, "err", err)
			}
		}
	}()
	return result, nil
}
