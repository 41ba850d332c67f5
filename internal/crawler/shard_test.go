package crawler

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Every shard has exactly one owner, and every instance reads the same
// ring from the same members in any order.
func TestRingGivesEachShardOneOwner(t *testing.T) {
	members := []string{"a", "b", "c", "d"}
	r1 := newRing(members)
	r2 := newRing([]string{"d", "b", "a", "c"})
	total := 0
	for _, m := range members {
		total += len(r1.shardsOf(m))
	}
	if total != numShards {
		t.Fatalf("%d shards owned, want %d", total, numShards)
	}
	for s := range numShards {
		if r1.owner(s) != r2.owner(s) {
			t.Fatalf("shard %d: %s or %s depending on the order members were read", s, r1.owner(s), r2.owner(s))
		}
	}
	if newRing(nil).owner(3) != "" {
		t.Fatal("an empty ring has an owner")
	}
	if got := len(newRing([]string{"solo"}).shardsOf("solo")); got != numShards {
		t.Fatalf("a lone instance owns %d shards", got)
	}
}

// The consistent-hashing property: an instance joining takes shards only
// for itself (no shard moves between the others), and about its share;
// one leaving gives away only its own.
func TestRingMovesOnlyTheShardsOfTheInstanceThatChanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 1))
	for trial := range 50 {
		n := 2 + rng.IntN(6)
		var members []string
		for i := range n {
			members = append(members, fmt.Sprintf("node-%d-%d", trial, i))
		}
		before := newRing(members)
		joined := fmt.Sprintf("new-%d", trial)
		after := newRing(append(append([]string{}, members...), joined))
		moved := 0
		for s := range numShards {
			if before.owner(s) != after.owner(s) {
				if after.owner(s) != joined {
					t.Fatalf("trial %d: shard %d moved from %s to %s when %s joined", trial, s, before.owner(s), after.owner(s), joined)
				}
				moved++
			}
		}
		// With 64 points each, an instance's share is within a factor of
		// about 2 of 1/(n+1).
		share := float64(numShards) / float64(n+1)
		if float64(moved) < share/2.5 || float64(moved) > share*2.5 {
			t.Fatalf("trial %d: %d shards moved to the %dth instance; its share is %.0f", trial, moved, n+1, share)
		}
		left := members[rng.IntN(n)]
		var rest []string
		for _, m := range members {
			if m != left {
				rest = append(rest, m)
			}
		}
		gone := newRing(rest)
		for s := range numShards {
			if before.owner(s) != left && gone.owner(s) != before.owner(s) {
				t.Fatalf("trial %d: shard %d of %s moved when %s left", trial, s, before.owner(s), left)
			}
		}
	}
}

// Hosts spread over the shards: the synthetic web's names fill them all,
// none with much more than its share.
func TestShardOfSpreadsHosts(t *testing.T) {
	counts := make([]int, numShards)
	for i := range 25600 {
		s := shardOf(fmt.Sprintf("host%d.test:8080", i))
		if s < 0 || s >= numShards {
			t.Fatalf("shard %d", s)
		}
		counts[s]++
	}
	for s, c := range counts {
		if c < 50 || c > 160 {
			t.Fatalf("shard %d holds %d of 25,600 hosts (share 100)", s, c)
		}
	}
}
