package snowflake

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shiftedClock is real time plus an adjustable offset, so tests can make the
// clock jump backwards while sleeps still make it move forward.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) now() time.Time        { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftedClock) shift(d time.Duration) { c.offset.Add(int64(d)) }

func mustGen(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestComposeDecodeRoundTrip(t *testing.T) {
	cases := []struct {
		ms          int64
		worker, seq int
	}{{0, 0, 0}, {1, 1, 1}, {maxMillis, MaxWorker, MaxSequence}, {123456789, 512, 4000}}
	for _, c := range cases {
		id := compose(c.ms, c.worker, c.seq)
		if id < 0 {
			t.Fatalf("%+v: negative id %d", c, id)
		}
		p, err := Decode(id, DefaultEpoch)
		if err != nil {
			t.Fatal(err)
		}
		wantTime := DefaultEpoch.Add(time.Duration(c.ms) * time.Millisecond)
		if !p.Time.Equal(wantTime) || p.Worker != c.worker || p.Sequence != c.seq {
			t.Fatalf("%+v decoded as %+v", c, p)
		}
	}
	if _, err := Decode(-1, DefaultEpoch); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("negative id: %v", err)
	}
}

func TestStrictlyIncreasing(t *testing.T) {
	g := mustGen(t, Config{Worker: 7})
	prev, _ := g.Next()
	for i := 0; i < 200_000; i++ { // crosses many millisecond and sequence boundaries
		id, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if id <= prev {
			t.Fatalf("id %d after %d", id, prev)
		}
		prev = id
	}
	p, _ := Decode(prev, g.Epoch())
	if p.Worker != 7 {
		t.Fatalf("worker %d", p.Worker)
	}
}

// With a frozen clock, the 4,097th ID of a millisecond must wait for the
// next millisecond rather than wrap the sequence.
func TestSequenceExhaustionWaitsForNextMillisecond(t *testing.T) {
	var calls atomic.Int64
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	// The clock stands still for the first 4,097 reads, then moves 1 ms.
	now := func() time.Time {
		if calls.Add(1) <= MaxSequence+2 {
			return base
		}
		return base.Add(time.Millisecond)
	}
	g := mustGen(t, Config{Now: now})
	ids := make([]ID, MaxSequence+2)
	if _, err := g.NextN(ids); err != nil {
		t.Fatal(err)
	}
	last, _ := Decode(ids[len(ids)-1], g.Epoch())
	first, _ := Decode(ids[0], g.Epoch())
	if last.Sequence != 0 || last.Time.Sub(first.Time) != time.Millisecond {
		t.Fatalf("4,097th id: %+v (first %+v)", last, first)
	}
	if g.Stats().ExhaustedWaits != 1 {
		t.Fatalf("exhausted waits %d", g.Stats().ExhaustedWaits)
	}
}

func TestSmallBackwardStepIsWaitedOut(t *testing.T) {
	c := &shiftedClock{}
	g := mustGen(t, Config{Now: c.now, MaxBackward: 20 * time.Millisecond})
	before, _ := g.Next()
	c.shift(-8 * time.Millisecond)
	after, err := g.Next()
	if err != nil {
		t.Fatalf("small step: %v", err)
	}
	if after <= before {
		t.Fatalf("id went backwards: %d then %d", before, after)
	}
	if g.Stats().BackwardWaits == 0 {
		t.Fatal("no backward wait counted")
	}
}

func TestLargeBackwardStepIsAnError(t *testing.T) {
	c := &shiftedClock{}
	g := mustGen(t, Config{Now: c.now})
	if _, err := g.Next(); err != nil {
		t.Fatal(err)
	}
	c.shift(-time.Second)
	_, err := g.Next()
	if !errors.Is(err, ErrClockBackwards) {
		t.Fatalf("got %v, want ErrClockBackwards", err)
	}
	if g.Stats().BackwardErrors != 1 {
		t.Fatalf("backward errors %d", g.Stats().BackwardErrors)
	}
	c.shift(time.Second + 2*time.Millisecond) // the clock recovers: issuing resumes
	if _, err := g.Next(); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// 1,024 workers, each issuing many IDs at the same moments: no two equal.
func TestNoDuplicatesAcrossAllWorkers(t *testing.T) {
	const perWorker = 300
	var mu sync.Mutex
	seen := make(map[ID]struct{}, (MaxWorker+1)*perWorker)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for w := 0; w <= MaxWorker; w++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(w int) {
			defer wg.Done()
			defer func() { <-sem }()
			g := mustGen(t, Config{Worker: w})
			ids := make([]ID, perWorker)
			if _, err := g.NextN(ids); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if _, dup := seen[id]; dup {
					t.Errorf("duplicate id %d", id)
				}
				seen[id] = struct{}{}
			}
		}(w)
	}
	wg.Wait()
	if len(seen) != (MaxWorker+1)*perWorker {
		t.Fatalf("%d distinct ids", len(seen))
	}
}

func TestWorkerRange(t *testing.T) {
	for _, w := range []int{-1, MaxWorker + 1} {
		if _, err := NewGenerator(Config{Worker: w}); err == nil {
			t.Fatalf("worker %d accepted", w)
		}
	}
}

func TestWorkerChangeKeepsIDsIncreasing(t *testing.T) {
	g := mustGen(t, Config{Worker: 900})
	a, _ := g.Next()
	g.setValidity(3, 1<<62)
	b, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b <= a {
		t.Fatalf("after switching to a lower worker id: %d then %d", a, b)
	}
}

func TestBase62(t *testing.T) {
	for _, n := range []uint64{0, 1, 61, 62, 3843, 3844, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		s := EncodeBase62(n)
		got, err := DecodeBase62(s)
		if err != nil || got != n {
			t.Fatalf("%d -> %q -> %d, %v", n, s, got, err)
		}
	}
	if s := EncodeBase62(1<<64 - 1); len(s) != MaxBase62Len {
		t.Fatalf("max uint64 is %q", s)
	}
	for _, bad := range []string{"", "0a", "abc!", "LygHa16AHYG", "zzzzzzzzzzz", "123456789012"} {
		if _, err := DecodeBase62(bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("DecodeBase62(%q) = %v", bad, err)
		}
	}
}

func TestParse(t *testing.T) {
	if id, err := Parse("12345"); err != nil || id != 12345 {
		t.Fatal(id, err)
	}
	for _, bad := range []string{"", "-1", "+1", "abc", "9223372036854775808", "1.5", " 1"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Parse(%q) = %v", bad, err)
		}
	}
}

func FuzzDecodeBase62(f *testing.F) {
	for _, s := range []string{"0", "zz", "LygHa16AHYF", "0a", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := DecodeBase62(s)
		if err != nil {
			return
		}
		if back := EncodeBase62(n); back != s {
			t.Fatalf("%q decodes to %d which encodes to %q", s, n, back)
		}
	})
}

func FuzzParseDecode(f *testing.F) {
	for _, s := range []string{"0", "1", "9223372036854775807", "-5", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		p, err := Decode(id, DefaultEpoch)
		if err != nil {
			t.Fatal(err)
		}
		ms := p.Time.Sub(DefaultEpoch).Milliseconds()
		if compose(ms, p.Worker, p.Sequence) != id {
			t.Fatalf("%d does not recompose from %+v", id, p)
		}
	})
}
