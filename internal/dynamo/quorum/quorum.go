// Package quorum is the Dynamo coordinator's decision logic with no IO
// (section 4.5 of the Dynamo paper), in the style of etcd's raft: the
// caller sends requests to the replicas, feeds each answer in, and asks
// what follows. Keeping it pure lets the tests walk every order of answers
// and failures.
//
// A write succeeds once W replicas acknowledged it and fails as soon as W
// acknowledgements have become impossible. A read succeeds once R replicas
// answered; its result is the reconciliation of every version they
// returned (so concurrent versions come back as siblings), and every
// replica that answered with less than that result needs a read repair.
// Answers that arrive after the decision still count for repair.
package quorum

import (
	"fmt"
	"sort"

	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// State is where a request stands.
type State int

// The states.
const (
	Pending State = iota
	Succeeded
	Failed
)

func (s State) String() string { return [...]string{"pending", "succeeded", "failed"}[s] }

// tally counts answers from n replicas until need of them have answered
// (Succeeded) or too many have failed for that to happen (Failed). The
// decision is sticky; a replica counts once, and an answer already counted
// is not undone by a later failure report.
type tally struct {
	need, n  int
	answered map[string]bool
	failed   map[string]bool
	decision State
}

func newTally(need, n int, name string) (tally, error) {
	if n < 1 || need < 1 || need > n {
		return tally{}, fmt.Errorf("quorum: %s=%d with N=%d; want 1 ≤ %s ≤ N", name, need, n, name)
	}
	return tally{need: need, n: n, answered: map[string]bool{}, failed: map[string]bool{}}, nil
}

// answer records node's answer and reports whether it was new.
func (t *tally) answer(node string) bool {
	if t.failed[node] || t.answered[node] {
		return false
	}
	t.answered[node] = true
	t.update()
	return true
}

func (t *tally) fail(node string) {
	if !t.answered[node] {
		t.failed[node] = true
	}
	t.update()
}

func (t *tally) update() {
	if t.decision == Pending {
		switch {
		case len(t.answered) >= t.need:
			t.decision = Succeeded
		case t.n-len(t.failed) < t.need:
			t.decision = Failed
		}
	}
}

// Write tracks one write sent to n replicas needing w acknowledgements.
type Write struct{ t tally }

// NewWrite starts tracking; w must be 1..n.
func NewWrite(w, n int) (*Write, error) {
	t, err := newTally(w, n, "W")
	return &Write{t}, err
}

// Ack records a replica's acknowledgement and returns the state.
func (q *Write) Ack(node string) State {
	q.t.answer(node)
	return q.t.decision
}

// Fail records that a replica did not (and will not) acknowledge.
func (q *Write) Fail(node string) State {
	q.t.fail(node)
	return q.t.decision
}

// State returns the decision so far. Once decided, it never changes.
func (q *Write) State() State { return q.t.decision }

// Acks is how many replicas acknowledged.
func (q *Write) Acks() int { return len(q.t.answered) }

// Read tracks one read sent to n replicas needing r answers.
type Read struct {
	t       tally
	answers map[string][]vclock.Version
	merged  []vclock.Version
}

// NewRead starts tracking; r must be 1..n.
func NewRead(r, n int) (*Read, error) {
	t, err := newTally(r, n, "R")
	return &Read{t: t, answers: map[string][]vclock.Version{}}, err
}

// Answer records the versions a replica holds (none, when it has no copy).
func (q *Read) Answer(node string, versions []vclock.Version) State {
	if q.t.answer(node) {
		q.answers[node] = versions
		for _, v := range versions {
			q.merged = vclock.Reconcile(q.merged, v)
		}
	}
	return q.t.decision
}

// Fail records that a replica did not answer.
func (q *Read) Fail(node string) State {
	q.t.fail(node)
	return q.t.decision
}

// State returns the decision so far.
func (q *Read) State() State { return q.t.decision }

// Answers is how many replicas answered.
func (q *Read) Answers() int { return len(q.answers) }

// Result is the reconciled set of versions from every answer so far:
// one version, siblings, or none (the key is absent). Tombstones are
// included; the caller hides them.
func (q *Read) Result() []vclock.Version { return append([]vclock.Version(nil), q.merged...) }

// Repairs returns, for each replica that answered with less than the
// result, the versions it should be sent. Sending Result() is enough: the
// replica's own Reconcile keeps what it has that is not superseded.
func (q *Read) Repairs() []string {
	var stale []string
	for node, got := range q.answers {
		if !covers(got, q.merged) {
			stale = append(stale, node)
		}
	}
	sort.Strings(stale)
	return stale
}

// covers reports whether have already holds every version of want (by
// write event): then reconciling want into have changes nothing.
func covers(have, want []vclock.Version) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if vclock.SameEvent(h, w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
