package cache_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/cache"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func idSetEngines(t *testing.T, opts cache.IDSetOptions) map[string]cache.IDSets {
	c := mustOpen(t, testsvc.Redis(t), testsvc.Name("idsets"))
	return map[string]cache.IDSets{
		"Memory": cache.NewIDSets(mustOpen(t, "", "idsets"), "t", opts),
		"Redis":  cache.NewIDSets(c, "t", opts),
	}
}

func TestIDSetsContract(t *testing.T) {
	big := int64(1)<<62 + 5 // beyond a float64's exact integers
	for name, s := range idSetEngines(t, cache.IDSetOptions{Cap: 4}) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, _, ok, err := s.Range(ctx, "a", 0, 10); ok || err != nil {
				t.Fatalf("missing set: ok=%v err=%v", ok, err)
			}
			// Add leaves a missing set alone.
			must(t, s.Add(ctx, []string{"a"}, 1, 2))
			if _, _, ok, _ := s.Range(ctx, "a", 0, 10); ok {
				t.Fatal("Add created a set")
			}
			created, err := s.Begin(ctx, "a")
			if err != nil || !created {
				t.Fatalf("begin: %v %v", created, err)
			}
			if again, _ := s.Begin(ctx, "a"); again {
				t.Fatal("a second Begin created the set again")
			}
			ids, floor, ok, err := s.Range(ctx, "a", 0, 10)
			if err != nil || !ok || len(ids) != 0 || floor != math.MaxInt64 {
				t.Fatalf("building set: %v %d %v %v", ids, floor, ok, err)
			}
			must(t, s.Add(ctx, []string{"a", "b"}, big)) // races the rebuild: kept
			must(t, s.Fill(ctx, "a", []int64{30, 20, 10}, 0))
			ids, floor, _, _ = s.Range(ctx, "a", 0, 10)
			if !slices.Equal(ids, []int64{big, 30, 20, 10}) || floor != 0 {
				t.Fatalf("after fill: %v floor %d", ids, floor)
			}
			// Over the cap: the lowest goes and the floor rises to it.
			must(t, s.Add(ctx, []string{"a"}, 25, 30))
			ids, floor, _, _ = s.Range(ctx, "a", 0, 10)
			if !slices.Equal(ids, []int64{big, 30, 25, 20}) || floor != 10 {
				t.Fatalf("after trim: %v floor %d", ids, floor)
			}
			ids, _, _, _ = s.Range(ctx, "a", 30, 2)
			if !slices.Equal(ids, []int64{25, 20}) {
				t.Fatalf("below 30, 2: %v", ids)
			}
			ids, _, _, _ = s.Range(ctx, "a", 31, 1)
			if !slices.Equal(ids, []int64{30}) {
				t.Fatalf("below 31, 1: %v", ids)
			}
			in, _, ok, err := s.Contains(ctx, "a", []int64{25, 26, big})
			if err != nil || !ok || !slices.Equal(in, []bool{true, false, true}) {
				t.Fatalf("contains: %v %v %v", in, ok, err)
			}
			must(t, s.Remove(ctx, []string{"a"}, 25, 99))
			ids, _, _, _ = s.Range(ctx, "a", 0, 10)
			if !slices.Equal(ids, []int64{big, 30, 20}) {
				t.Fatalf("after remove: %v", ids)
			}
			must(t, s.Drop(ctx, "a"))
			if _, _, ok, _ := s.Range(ctx, "a", 0, 10); ok {
				t.Fatal("dropped set still there")
			}
			must(t, s.Fill(ctx, "a", []int64{1}, 0)) // a fill after a drop: left alone
			if _, _, ok, _ := s.Range(ctx, "a", 0, 10); ok {
				t.Fatal("Fill recreated a dropped set")
			}
		})
	}
}

func TestIDSetsIdleTTL(t *testing.T) {
	for name, s := range idSetEngines(t, cache.IDSetOptions{IdleTTL: 100 * time.Millisecond}) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := s.Begin(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			must(t, s.Fill(ctx, "x", []int64{7}, 0))
			// A read refreshes the TTL, so no polling: one look well after it.
			time.Sleep(400 * time.Millisecond)
			if _, _, ok, _ := s.Range(ctx, "x", 0, 1); ok {
				t.Fatal("an idle set outlived its TTL")
			}
		})
	}
}

// Over random operations, both engines give the same answers, and every
// set holds every ID of its truth above its floor and nothing else.
func TestIDSetsAgreeWithTheirTruth(t *testing.T) {
	engines := idSetEngines(t, cache.IDSetOptions{Cap: 8})
	ctx := context.Background()
	for seed := uint64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		keys := []string{"k1", "k2", "k3"}
		truth := map[string]map[int64]bool{}
		for _, k := range keys {
			truth[k] = map[int64]bool{}
			for _, s := range engines {
				must(t, s.Drop(ctx, k))
			}
		}
		for step := 0; step < 300; step++ {
			k := keys[rng.IntN(len(keys))]
			id := int64(rng.IntN(60) + 1)
			op := rng.IntN(10)
			for _, s := range engines {
				switch {
				case op < 5:
					must(t, s.Add(ctx, []string{k}, id))
				case op < 7:
					must(t, s.Remove(ctx, []string{k}, id))
				case op < 8:
					must(t, s.Drop(ctx, k))
				default: // a rebuild from the truth's highest 5
					var all []int64
					for x := range truth[k] {
						all = append(all, x)
					}
					slices.Sort(all)
					slices.Reverse(all)
					floor := int64(0)
					if len(all) > 5 {
						floor, all = all[5], all[:5]
					}
					if _, err := s.Begin(ctx, k); err != nil {
						t.Fatal(err)
					}
					must(t, s.Fill(ctx, k, all, floor))
				}
			}
			switch {
			case op < 5:
				truth[k][id] = true
			case op < 7:
				delete(truth[k], id)
			}
			var answers [][]int64
			for name, s := range engines {
				ids, floor, ok, err := s.Range(ctx, k, 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					answers = append(answers, nil)
					continue
				}
				for x := range truth[k] {
					if x > floor && !slices.Contains(ids, x) {
						t.Fatalf("seed %d step %d %s: %s lacks %d above floor %d: %v", seed, step, name, k, x, floor, ids)
					}
				}
				for _, x := range ids {
					if !truth[k][x] {
						t.Fatalf("seed %d step %d %s: %s holds %d, not in its truth", seed, step, name, k, x)
					}
				}
				answers = append(answers, append(ids, floor))
			}
			if !slices.Equal(answers[0], answers[1]) {
				t.Fatalf("seed %d step %d: engines disagree on %s: %v vs %v", seed, step, k, answers[0], answers[1])
			}
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
