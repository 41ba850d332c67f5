package dynamo

import (
	"context"
	"errors"
	"net/http"

	"github.com/scalelab/scalelab/internal/dynamo/merkle"
	"github.com/scalelab/scalelab/internal/dynamo/ring"
	"github.com/scalelab/scalelab/internal/dynamo/store"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Handle serves one request from a peer (the other end of Transport.Call).
// It never panics on a malformed message: it answers 400.
func (n *Node) Handle(ctx context.Context, req []byte) []byte {
	if len(req) == 0 {
		return errorResponse(http.StatusBadRequest, "empty message")
	}
	d := newDecoder(req[1:])
	switch op(req[0]) {
	case opReplicaPut:
		key, hintFor, versions := d.bytes(n.cfg.MaxKey), d.str(64), d.versions()
		if err := d.done(); err != nil || len(key) == 0 {
			return errorResponse(http.StatusBadRequest, "malformed replica write")
		}
		if hintFor == n.cfg.ID {
			hintFor = "" // a hint for this node is simply its own replica
		}
		if _, err := n.store.Put(key, hintFor, versions...); err != nil {
			return n.internal(err)
		}
		return okResponse().b
	case opReplicaPutMany:
		count := d.uint()
		if count > maxBatch {
			return errorResponse(http.StatusBadRequest, "malformed replica batch")
		}
		items := make([]store.Item, 0, count)
		for i := uint64(0); i < count && d.err == nil; i++ {
			it := store.Item{Key: d.bytes(n.cfg.MaxKey), HintFor: d.str(64), Versions: d.versions()}
			if it.HintFor == n.cfg.ID {
				it.HintFor = ""
			}
			if len(it.Key) == 0 {
				d.err = errBadMessage
			}
			items = append(items, it)
		}
		if err := d.done(); err != nil {
			return errorResponse(http.StatusBadRequest, "malformed replica batch")
		}
		if err := n.store.PutMany(items); err != nil {
			return n.internal(err)
		}
		return okResponse().b
	case opReplicaGet:
		key := d.bytes(n.cfg.MaxKey)
		if err := d.done(); err != nil || len(key) == 0 {
			return errorResponse(http.StatusBadRequest, "malformed replica read")
		}
		vs, err := n.store.Get(key)
		if err != nil {
			return n.internal(err)
		}
		e := okResponse()
		e.versions(vs)
		return e.b
	case opCoordinate:
		key, rawCtx, tomb, value, w := d.bytes(n.cfg.MaxKey), d.bytes(1<<20), d.bool(), d.bytes(n.cfg.MaxValue), d.uint()
		clock, err := vclock.Unmarshal(rawCtx)
		if d.done() != nil || err != nil || w > uint64(n.cfg.N) {
			return errorResponse(http.StatusBadRequest, "malformed forwarded write")
		}
		made, err := n.Put(ctx, key, WriteRequest{Context: clock, Value: value, Tombstone: tomb, W: int(w), forwarded: true})
		if err != nil {
			return errorResponse(httpx.StatusOf(err), apperr.MessageOf(err))
		}
		e := okResponse()
		e.bytes(made.MarshalBinary())
		return e.b
	case opIssued:
		key, actor := d.bytes(n.cfg.MaxKey), d.str(256)
		if d.done() != nil || len(key) == 0 {
			return errorResponse(http.StatusBadRequest, "malformed issued request")
		}
		e := okResponse()
		if actor == n.store.Actor(n.cfg.ID) {
			e.bool(true)
			e.uint(n.store.Issued(key))
		} else {
			e.bool(false) // an older incarnation: its counters are not told apart
			e.uint(0)
		}
		return e.b
	case opTree:
		start, end, depth := d.uint(), d.uint(), d.uint()
		if d.done() != nil || depth > merkle.MaxDepth {
			return errorResponse(http.StatusBadRequest, "malformed tree request")
		}
		t, err := n.tree(ring.Range{Start: start, End: end}, int(depth))
		if err != nil {
			return n.internal(err)
		}
		e := okResponse()
		for _, h := range t.Leaves() {
			e.uint(h)
		}
		return e.b
	case opLeaves:
		start, end, depth, count := d.uint(), d.uint(), d.uint(), d.uint()
		if d.err != nil || depth > merkle.MaxDepth || count > 1<<merkle.MaxDepth {
			return errorResponse(http.StatusBadRequest, "malformed leaves request")
		}
		want := map[int]bool{}
		for i := uint64(0); i < count; i++ {
			want[int(d.uint())] = true
		}
		if d.done() != nil {
			return errorResponse(http.StatusBadRequest, "malformed leaves request")
		}
		e := okResponse()
		var entries int
		var body encoder
		cutoff := n.reapCutoff()
		err := n.store.Scan(start, end, func(key, raw []byte) error {
			if want[merkle.Leaf(start, end, ring.KeyHash(key), int(depth))] && !expired(raw, cutoff) {
				body.bytes(key)
				body.b = append(body.b, raw...) // the stored encoding is the wire encoding
				entries++
			}
			return nil
		})
		if err != nil {
			return n.internal(err)
		}
		e.uint(uint64(entries))
		e.b = append(e.b, body.b...)
		return e.b
	}
	return errorResponse(http.StatusBadRequest, "unknown operation")
}

func (n *Node) internal(err error) []byte {
	if !errors.Is(err, context.Canceled) {
		n.log.Error("peer request failed", "err", err)
	}
	return errorResponse(http.StatusInternalServerError, "internal error")
}
