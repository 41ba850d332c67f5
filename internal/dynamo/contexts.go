package dynamo

import (
	"context"
	"strings"

	"github.com/scalelab/scalelab/internal/dynamo/vclock"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// A causal context comes from the client, and the client may lie. A
// context is a claim — "I have seen these writes" — and a write carrying
// it replaces every version it claims to have seen. A claim of writes
// that were never made is poison: with an actor's counter at 2^64−1 the
// coordinator's next counter wraps, and every later write of that actor
// counts as already seen, so the key silently drops all of them while
// answering 204.
//
// So each entry of a context is checked before a write is stamped:
//
//   - This node's own current actor: the claim must not pass the highest
//     counter this node has issued for the key (store.Issued). A higher
//     one cannot be right: 400.
//   - Another actor whose writes the local replica knows up to the claim:
//     the claim is backed by a version this node holds.
//   - Otherwise the actor's own node is asked (opIssued) for the highest
//     counter it issued for the key: a claim above it is refused (400).
//
// When no one can vouch for a claim — its node is down, gone, or the
// actor is an older incarnation — the entry is clamped to what the local
// replica knows. A smaller context replaces fewer versions: the worst it
// can do is leave an old version as an extra sibling, never lose a write
// (the same bound as pruning; see vclock).
func (n *Node) verifyContext(ctx context.Context, key []byte, claim vclock.Clock, local []vclock.Version) (vclock.Clock, error) {
	if len(claim) == 0 {
		return claim, nil
	}
	self := n.store.Actor(n.cfg.ID)
	var out vclock.Clock
	for _, e := range claim {
		top := highest(e)
		switch {
		case e.Node == self:
			if issued := n.store.Issued(key); top > issued {
				return nil, apperr.E(apperr.Invalid, "%s claims write %d of %s; this node has issued %d for the key",
					ContextHeader, top, e.Node, issued)
			}
			out = append(out, e)
			continue
		}
		known := knownOf(local, e.Node)
		if top <= known {
			out = append(out, e)
			continue
		}
		issued, vouched := n.askIssued(ctx, key, e.Node)
		switch {
		case vouched && top > issued:
			return nil, apperr.E(apperr.Invalid, "%s claims write %d of %s; it has issued %d for the key",
				ContextHeader, top, e.Node, issued)
		case vouched:
			out = append(out, e)
		default:
			n.metrics.contextsClamped.Add(1)
			if c, ok := clamp(e, known); ok {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// highest is the largest counter an entry claims.
func highest(e vclock.Entry) uint64 {
	top := e.Counter
	for _, x := range e.Extra {
		top = max(top, x)
	}
	return top
}

// knownOf is the highest counter of actor that the versions' clocks hold.
func knownOf(versions []vclock.Version, actor string) uint64 {
	var known uint64
	for _, v := range versions {
		for _, e := range v.Clock() {
			if e.Node == actor {
				known = max(known, highest(e))
			}
		}
	}
	return known
}

// clamp keeps the part of e at or below limit (false: nothing is left).
func clamp(e vclock.Entry, limit uint64) (vclock.Entry, bool) {
	c := vclock.Entry{Node: e.Node, Counter: min(e.Counter, limit), At: e.At}
	for _, x := range e.Extra {
		if x <= limit && x > c.Counter {
			c.Extra = append(c.Extra, x)
		}
	}
	return c, c.Counter > 0 || len(c.Extra) > 0
}

// actorNode is the node of an actor ("node.incarnation").
func actorNode(actor string) string {
	if i := strings.LastIndexByte(actor, '.'); i > 0 {
		return actor[:i]
	}
	return actor
}

// askIssued asks actor's node how far it has counted for key; vouched is
// false when it cannot say (unreachable, not a member, an old incarnation).
func (n *Node) askIssued(ctx context.Context, key []byte, actor string) (issued uint64, vouched bool) {
	node := actorNode(actor)
	if node == n.cfg.ID {
		return 0, false // an older incarnation of this node
	}
	if _, ok := n.members.Member(node); !ok {
		return 0, false
	}
	e := newRequest(opIssued)
	e.bytes(key)
	e.str(actor)
	d, err := n.call(ctx, node, e.b)
	if err != nil {
		return 0, false
	}
	known, count := d.bool(), d.uint()
	if d.done() != nil || !known {
		return 0, false
	}
	return count, true
}

// checkLimits refuses a write that would leave key with more versions or
// bytes than the node allows, counted on this node's replica: the versions
// the write's context does not replace, plus the write itself. Riak has
// the same two guards (max_siblings, max_object_size) for the same
// reason: blind writes pile up siblings that every read must carry.
func (n *Node) checkLimits(local []vclock.Version, claim vclock.Clock, valueLen int) error {
	count, size := 1, valueLen
	for _, v := range local {
		if !claim.Covers(v.Dot.Node, v.Dot.Counter) {
			count++
			size += len(v.Value)
		}
	}
	switch {
	case count > n.cfg.MaxSiblings:
		return apperr.E(apperr.Invalid, "the key would hold %d versions (siblings); the limit is %d: read it and write back with its %s to resolve them",
			count, n.cfg.MaxSiblings, ContextHeader)
	case size > n.cfg.MaxKeyBytes:
		return apperr.E(apperr.Invalid, "the key's versions would hold %d bytes; the limit is %d: read it and write back with its %s to resolve them",
			size, n.cfg.MaxKeyBytes, ContextHeader)
	}
	return nil
}
