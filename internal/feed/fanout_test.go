package feed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// A fan-out worker that dies holding jobs (the plan, or a batch halfway
// through a celebrity's followers) loses nothing and duplicates nothing:
// its jobs were never acknowledged, so another instance's workers get
// them after the ack wait and redo them, and a redone write is a no-op.
// Two instances share PostgreSQL, Redis and NATS, as two processes would.
func TestFanoutWorkersKilledMidFanOut(t *testing.T) {
	for _, tc := range []struct {
		name  string
		dieIn string
		after int64 // jobs of that kind done before the worker dies
	}{
		{"holding the plan", jobPost, 0},
		{"halfway through the batches", jobBatch, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := testEngines(t, testsvc.Postgres(t), testsvc.Redis(t), testsvc.NATS(t))
			cfg := testConfig()
			cfg.Celebrity, cfg.BatchSize, cfg.Workers, cfg.AckWait = 1_000_000, 20, 2, time.Second
			var seen, died atomic.Int64
			dying := cfg
			dying.fanoutHook = func(j job) bool {
				if died.Load() > 0 {
					return true
				}
				if j.Kind == tc.dieIn && seen.Add(1) > tc.after {
					died.Store(1)
					return true
				}
				return false
			}
			a := openOn(t, e, dying)
			const n = 1000
			celeb, followers := seedCelebrity(t, a, n)
			for _, f := range followers { // every follower's timeline is cached
				if _, err := a.Timeline(ctx, f, 0, 1); err != nil {
					t.Fatal(err)
				}
			}
			p, err := a.CreatePost(ctx, celeb, NewPost{Body: "to every follower"})
			if err != nil {
				t.Fatal(err)
			}
			testsvc.WaitUntil(t, "the worker to die", 20*time.Second, func() bool { return died.Load() > 0 })
			a.fanout.stop() // what it held stays unacknowledged
			missing := func(s *Service) int {
				n := 0
				for _, f := range followers {
					ids, _, ok, err := s.caches.timelines.Range(ctx, idKey(f), 0, 5)
					if err != nil || !ok {
						t.Fatalf("follower %d's timeline left the cache: ok=%v err=%v", f, ok, err)
					}
					if len(ids) == 0 || ids[0] != p.ID {
						n++
					}
				}
				return n
			}
			if m := missing(a); m == 0 {
				t.Fatal("the fan-out finished before the worker died: the test proves nothing")
			} else {
				t.Logf("the worker died with %d of %d followers not yet written", m, n)
			}
			b := openOn(t, e, cfg)
			testsvc.WaitUntil(t, "the survivor to finish the fan-out", 30*time.Second, func() bool { return missing(b) == 0 })
			for _, f := range followers {
				page, err := b.Timeline(ctx, f, 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				count := 0
				for _, it := range page.Items {
					if it.ID == p.ID {
						count++
					}
				}
				if count != 1 || len(page.Items) != 1 {
					t.Fatalf("follower %d sees the post %d times in %d items", f, count, len(page.Items))
				}
			}
		})
	}
}

// seedCelebrity loads an account with n followers.
func seedCelebrity(t testing.TB, s *Service, n int) (int64, []int64) {
	t.Helper()
	tag := time.Now().UnixNano() % 1e9
	celeb := s.mustID(t)
	users := []SeedUser{{ID: celeb, Handle: fmt.Sprintf("celeb_%d", tag)}}
	var follows [][2]int64
	var followers []int64
	for i := 0; i < n; i++ {
		id := s.mustID(t)
		users = append(users, SeedUser{ID: id, Handle: fmt.Sprintf("f%d_%d", i, tag)})
		follows = append(follows, [2]int64{id, celeb})
		followers = append(followers, id)
	}
	if err := s.Seed(context.Background(), users, follows); err != nil {
		t.Fatal(err)
	}
	return celeb, followers
}

func (s *Service) mustID(t testing.TB) int64 {
	id, err := s.nextID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// failingBroker refuses publishes to one topic.
type failingBroker struct {
	broker.Broker
	topic string
}

func (b failingBroker) Publish(ctx context.Context, topic string, data []byte) error {
	if topic == b.topic {
		return errors.New("broker unreachable")
	}
	return b.Broker.Publish(ctx, topic, data)
}

// A post whose fan-out cannot be queued is not kept: the author is told to
// try again, and no timeline is left lacking a post that exists.
func TestAPostWhoseFanoutCannotBeQueuedIsNotKept(t *testing.T) {
	ctx := context.Background()
	s := openService(t, "", "", "", testConfig())
	ann, _, _ := s.CreateUser(ctx, NewUser{Handle: "ann"})
	bob, _, _ := s.CreateUser(ctx, NewUser{Handle: "bob"})
	if err := s.Follow(ctx, bob.ID, ann.ID); err != nil {
		t.Fatal(err)
	}
	readAll(t, s, bob.ID, 10) // bob's timeline is cached
	kept, err := s.CreatePost(ctx, ann.ID, NewPost{Body: "first"})
	if err != nil {
		t.Fatal(err)
	}
	settle(t, s) // the first post's jobs are done before the broker fails
	s.broker = failingBroker{Broker: s.broker, topic: fanoutTopic}
	_, err = s.CreatePost(ctx, ann.ID, NewPost{Body: "lost?"})
	if apperr.CodeOf(err) != apperr.Unavailable {
		t.Fatalf("a post whose fan-out failed: %v", err)
	}
	settle(t, s)
	if got := readAll(t, s, ann.ID, 10); !slices.Equal(got, []int64{kept.ID}) {
		t.Fatalf("ann's own timeline: %v, want only %d", got, kept.ID)
	}
	if got := readAll(t, s, bob.ID, 10); !slices.Equal(got, []int64{kept.ID}) {
		t.Fatalf("bob's timeline: %v, want only %d", got, kept.ID)
	}
	if u, _ := s.User(ctx, ann.ID); u.Posts != 1 {
		t.Fatalf("ann's post count is %d, want 1", u.Posts)
	}
}

// A client that leaves while its post is being written does not leave the
// author's cached recent posts without it: a write, once begun, ends.
func TestAWriteWhoseClientLeavesEnds(t *testing.T) {
	s := openService(t, "", testsvc.Redis(t), "", testConfig())
	ctx := context.Background()
	ann, _, _ := s.CreateUser(ctx, NewUser{Handle: "ann"})
	readAll(t, s, ann.ID, 10) // ann's recent posts are cached (empty)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	p, err := s.CreatePost(gone, ann.ID, NewPost{Body: "written as the client left"})
	if err != nil {
		t.Fatalf("a post whose client left: %v", err)
	}
	settle(t, s)
	if got := readAll(t, s, ann.ID, 10); !slices.Equal(got, []int64{p.ID}) {
		t.Fatalf("ann's timeline: %v, want %d", got, p.ID)
	}
}
