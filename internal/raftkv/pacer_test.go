package raftkv

import (
	"testing"
	"time"
)

// fakeClock advances only when the code under test sleeps or the test
// says a chunk of work took some time.
type fakeClock struct {
	t     time.Time
	slept []time.Duration
}

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(d time.Duration, _ <-chan struct{}) {
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
}

func newFakePacer(duty float64, stop <-chan struct{}) (*pacer, *fakeClock) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	return &pacer{duty: duty, now: c.now, sleep: c.sleep, stop: stop, last: c.t}, c
}

func TestPacerHoldsTheDutyCycle(t *testing.T) {
	for _, duty := range []float64{0.1, 0.25, 0.5, 0.9} {
		p, c := newFakePacer(duty, nil)
		var work time.Duration
		for i := range 50 {
			chunk := time.Duration(1+i%7) * time.Millisecond
			c.t = c.t.Add(chunk)
			work += chunk
			p.step()
		}
		var paused time.Duration
		for _, d := range c.slept {
			paused += d
		}
		got := float64(work) / float64(work+paused)
		if got < duty-0.001 || got > duty+0.001 {
			t.Errorf("duty %.2f: work took %.4f of the time (work %v, paused %v)", duty, got, work, paused)
		}
	}
}

func TestPacerBoundsOnePause(t *testing.T) {
	p, c := newFakePacer(0.25, nil)
	c.t = c.t.Add(time.Second) // one chunk stalled on a slow fsync
	p.step()
	if len(c.slept) != 1 || c.slept[0] != maxPause {
		t.Fatalf("pauses %v, want one of %v", c.slept, maxPause)
	}
}

func TestPacerOffAndStopped(t *testing.T) {
	for _, duty := range []float64{0, 1, -1, 2} {
		p, c := newFakePacer(duty, nil)
		for range 5 {
			c.t = c.t.Add(time.Millisecond)
			p.step()
		}
		if len(c.slept) != 0 {
			t.Errorf("duty %v paused %v; it should not pace at all", duty, c.slept)
		}
	}
	stop := make(chan struct{})
	close(stop)
	p, c := newFakePacer(0.25, stop)
	for range 5 {
		c.t = c.t.Add(time.Millisecond)
		p.step()
	}
	if len(c.slept) != 0 {
		t.Errorf("a stopping node's pacer paused %v", c.slept)
	}
}

func TestSleepOrStopReturnsOnStop(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	done := make(chan struct{})
	go func() { sleepOrStop(time.Hour, stop); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sleepOrStop ignored stop")
	}
}
