package quorum

import (
	"fmt"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// Every order of N=3 answers, each an ack or a failure: a write succeeds
// exactly when it got W acks, fails exactly when W became impossible, and
// decides at the earliest answer that settles it.
func TestWriteDecisionsExhaustive(t *testing.T) {
	const n = 3
	for w := 1; w <= n; w++ {
		for outcome := 0; outcome < 1<<n; outcome++ { // bit i: replica i acks
			for _, order := range permutations(n) {
				q, err := NewWrite(w, n)
				if err != nil {
					t.Fatal(err)
				}
				acks, fails := 0, 0
				for _, i := range order {
					node := fmt.Sprint("n", i)
					var s State
					if outcome&(1<<i) != 0 {
						acks++
						s = q.Ack(node)
					} else {
						fails++
						s = q.Fail(node)
					}
					want := Pending
					if acks >= w {
						want = Succeeded
					} else if n-fails < w {
						want = Failed
					}
					// Decisions are sticky, and agree with the counts at every step:
					// success stays reachable-and-reached, failure stays impossible.
					if q.State() != s || s != want {
						t.Fatalf("W=%d outcome %03b order %v: state %v after %d acks %d fails, want %v", w, outcome, order, s, acks, fails, want)
					}
				}
				total := popcount(outcome)
				if (total >= w) != (q.State() == Succeeded) {
					t.Fatalf("W=%d with %d acks ended %v", w, total, q.State())
				}
			}
		}
	}
	if _, err := NewWrite(4, 3); err == nil {
		t.Fatal("W > N accepted")
	}
	if _, err := NewWrite(0, 3); err == nil {
		t.Fatal("W = 0 accepted")
	}
}

func TestWriteIgnoresDuplicatesAndContradictions(t *testing.T) {
	q, _ := NewWrite(2, 3)
	q.Ack("a")
	q.Ack("a") // a duplicate ack is one ack
	if q.State() != Pending || q.Acks() != 1 {
		t.Fatalf("after a duplicate ack: %v, %d acks", q.State(), q.Acks())
	}
	q.Fail("a") // an ack already received stands
	q.Fail("b")
	if q.State() != Pending {
		t.Fatalf("one ack, one failure, one outstanding: %v", q.State())
	}
	if q.Ack("c") != Succeeded {
		t.Fatal("two acks did not succeed")
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ver(value, node string, counter uint64, seen ...vclock.Version) vclock.Version {
	return vclock.Version{Dot: vclock.Entry{Node: node, Counter: counter, At: t0.UnixMilli()}, Context: vclock.Context(seen), Value: []byte(value)}
}

func TestReadReconcilesAndRepairs(t *testing.T) {
	v1 := ver("v1", "a", 1)
	v2 := ver("v2", "a", 2, v1)   // descends v1
	sib := ver("sib", "b", 1, v1) // concurrent with v2
	q, _ := NewRead(2, 3)
	if q.Answer("n1", []vclock.Version{v1}) != Pending {
		t.Fatal("decided after one answer with R=2")
	}
	if q.Answer("n2", []vclock.Version{v2}) != Succeeded {
		t.Fatal("not decided after two answers")
	}
	if r := q.Result(); len(r) != 1 || string(r[0].Value) != "v2" {
		t.Fatalf("result %v", r)
	}
	if got := q.Repairs(); fmt.Sprint(got) != "[n1]" {
		t.Fatalf("repairs %v, want n1 (it had only v1)", got)
	}
	// A late answer after the decision still feeds the result and repairs.
	q.Answer("n3", []vclock.Version{sib})
	if r := q.Result(); len(r) != 2 {
		t.Fatalf("siblings expected, got %d versions", len(r))
	}
	if got := q.Repairs(); fmt.Sprint(got) != "[n1 n2 n3]" {
		t.Fatalf("repairs %v", got)
	}
	// A replica with no copy answers with nothing and needs a repair.
	q2, _ := NewRead(1, 3)
	q2.Answer("n1", nil)
	if q2.State() != Succeeded || len(q2.Result()) != 0 || len(q2.Repairs()) != 0 {
		t.Fatal("an absent key: one empty answer")
	}
	q2.Answer("n2", []vclock.Version{v1})
	if fmt.Sprint(q2.Repairs()) != "[n1]" {
		t.Fatalf("repairs %v", q2.Repairs())
	}
}

func TestReadFailsWhenRIsImpossible(t *testing.T) {
	q, _ := NewRead(2, 3)
	q.Fail("n1")
	if q.Fail("n2") != Failed {
		t.Fatal("two failures of three with R=2 did not fail")
	}
	if q.Answer("n3", nil) != Failed {
		t.Fatal("a decision changed")
	}
	if _, err := NewRead(0, 3); err == nil {
		t.Fatal("R = 0 accepted")
	}
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func popcount(x int) int {
	c := 0
	for ; x > 0; x &= x - 1 {
		c++
	}
	return c
}
