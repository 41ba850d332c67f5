package detect

import (
	"reflect"
	"testing"
	"time"
)

func TestHeartbeatDeclaresASilentMemberOncePerSilence(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h := NewHeartbeat(300 * time.Millisecond)
	if got := h.Check(at(0)); got != nil {
		t.Fatalf("nobody watched yet, declared %v", got)
	}
	h.Beat("a", at(0))
	h.Beat("b", at(0))
	if got := h.Check(at(300)); got != nil {
		t.Fatalf("exactly the timeout is not past it: %v", got)
	}
	h.Beat("b", at(250))
	if got := h.Check(at(301)); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("at 301 ms: %v, want [a]", got)
	}
	if got := h.Check(at(2000)); !reflect.DeepEqual(got, []string{"b"}) || !h.Failed("a") {
		t.Fatalf("at 2 s: %v (a failed: %v), want only b new", got, h.Failed("a"))
	}
	if got := h.Check(at(5000)); got != nil {
		t.Fatalf("declared again in the same silence: %v", got)
	}
	if !h.Beat("a", at(5001)) || h.Failed("a") {
		t.Fatal("a beat after a declaration is a revival")
	}
	if h.Beat("a", at(5002)) {
		t.Fatal("a second beat is no revival")
	}
	if h.Beat("a", at(4000)) || h.Check(at(5200)) != nil {
		t.Fatal("a beat older than the last one moved the clock back")
	}
	h.Forget("b")
	if h.Failed("b") || h.Check(at(99999)) == nil {
		t.Fatal("forget: b gone, a still watched")
	}
}

// Every gap between beats longer than the timeout is one declaration, and
// no shorter gap is: the property the experiment's false-suspicion counts
// rest on.
func TestHeartbeatCountsEveryLongGap(t *testing.T) {
	gaps := []int{100, 350, 100, 299, 301, 900, 50, 300, 1000}
	timeout := 300 * time.Millisecond
	h := NewHeartbeat(timeout)
	now := time.Unix(0, 0)
	h.Beat("m", now)
	declared, want := 0, 0
	for _, g := range gaps {
		if time.Duration(g)*time.Millisecond > timeout {
			want++
		}
		for step := 0; step < g; step += 10 { // the observer checks every 10 ms
			now = now.Add(10 * time.Millisecond)
			declared += len(h.Check(now))
		}
		h.Beat("m", now)
	}
	if declared != want {
		t.Fatalf("%d declarations, want %d (one per gap over %v)", declared, want, timeout)
	}
}
