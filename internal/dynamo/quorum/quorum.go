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

// Write tracks one write sent to n replicas needing w acknowledgements.
type Write struct {
	w, n     int
	acked    map[string]bool
	failed   map[string]bool
	decision State
}

// NewWrite starts tracking; w must be 1..n.
func NewWrite(w, n int) (*Write, error) {
	if n < 1 || w < 1 || w > n {
		return nil, fmt.Errorf("quorum: W=%d with N=%d; want 1 ≤ W ≤ N", w, n)
	}
	return &Write{w: w, n: n, acked: map[string]bool{}, failed: map[string]bool{}}, nil
}

// Ack records a replica's acknowledgement and returns the state.
func (q *Write) Ack(node string) State {
	if !q.failed[node] {
		q.acked[node] = true
	}
	return q.update()
}

// Fail records that a replica did not (and will not) acknowledge.
func (q *Write) Fail(node string) State {
	if !q.acked[node] {
		q.failed[node] = true
	}
	return q.update()
}

func (q *Write) update() State {
	if q.decision == Pending {
		switch {
		case len(q.acked) >= q.w:
			q.decision = Succeeded
		case q.n-len(q.failed) < q.w:
			q.decision = Failed
		}
	}
	return q.decision
}

// State returns the decision so far. Once decided, it never changes.
func (q *Write) State() State { return q.decision }

// Acks is how many replicas acknowledged.
func (q *Write) Acks() int { return len(q.acked) }

// Read tracks one read sent to n replicas needing r answers.
type Read struct {
	r, n     int
	answers  map[string][]vclock.Version
	failed   map[string]bool
	merged   []vclock.Version
	decision State
}

// NewRead starts tracking; r must be 1..n.
func NewRead(r, n int) (*Read, error) {
	if n < 1 || r < 1 || r > n {
		return nil, fmt.Errorf("quorum: R=%d with N=%d; want 1 ≤ R ≤ N", r, n)
	}
	return &Read{r: r, n: n, answers: map[string][]vclock.Version{}, failed: map[string]bool{}}, nil
}

// Answer records the versions a replica holds (none, when it has no copy).
func (q *Read) Answer(node string, versions []vclock.Version) State {
	if q.failed[node] {
		return q.update()
	}
	if _, dup := q.answers[node]; !dup {
		q.answers[node] = versions
		for _, v := range versions {
			q.merged = vclock.Reconcile(q.merged, v)
		}
	}
	return q.update()
}

// Fail records that a replica did not answer.
func (q *Read) Fail(node string) State {
	if _, ok := q.answers[node]; !ok {
		q.failed[node] = true
	}
	return q.update()
}

func (q *Read) update() State {
	if q.decision == Pending {
		switch {
		case len(q.answers) >= q.r:
			q.decision = Succeeded
		case q.n-len(q.failed) < q.r:
			q.decision = Failed
		}
	}
	return q.decision
}

// State returns the decision so far.
func (q *Read) State() State { return q.decision }

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
// clock): then reconciling want into have changes nothing.
func covers(have, want []vclock.Version) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if vclock.Compare(h.Clock, w.Clock) == vclock.Equal {
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
