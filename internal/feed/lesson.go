package feed

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/host"
)

// LessonOptions shape the lesson: one generated graph, each mode run on it
// under the same mixed load.
type LessonOptions struct {
	Graph GraphSpec
	// Celebrity is hybrid's threshold.
	Celebrity int
	Modes     []timeline.Mode
	Duration  time.Duration // of each mode's load
	Readers   int           // goroutines reading timelines back to back
	PostRate  int           // ordinary posts a second, by random accounts
	// CelebrityPosts are made by account 0 during each mode's load.
	CelebrityPosts int
	// Check is how many readers' whole timelines are compared with the
	// truth after each mode's load.
	Check int
	Dir   string // working files (the SQLite store)
	// DB is the store's URL ("": SQLite in Dir).
	DB string
	// Cache is the cache engine's URL ("": in-process; redis://… puts every
	// list a read touches one network round trip away).
	Cache string
}

// ModeResult is one mode's figures.
type ModeResult struct {
	Mode           string
	Posts          int     // ordinary posts made
	Entries        float64 // timeline entries fan-out wrote
	PerPost        float64 // entries per post (write amplification)
	CelebTargets   int     // followers a celebrity post was pushed to
	CelebVisibleS  float64 // the slowest celebrity post's time until every follower had it
	CelebCheckedOK int     // sampled celebrity followers whose first page showed its last post
	CelebChecked   int
	Reads          int
	ReadsPerS      float64
	ReadP50MS      float64
	ReadP99MS      float64
	CachedIDs      int64   // IDs held in the timeline sets
	CachedSets     int     // timeline sets held
	HeapMB         float64 // live heap after the load
	Checked        int     // readers compared with the truth
	Missing        int     // posts the truth has that a timeline lacked
	Duplicated     int     // posts a timeline showed twice
	Extra          int     // posts a timeline showed that the truth lacks
}

// LessonResult is a whole run.
type LessonResult struct {
	Users, Follows, Celebrity, TopFollowers int
	SeedSeconds                             float64
	Modes                                   []ModeResult
}

// RunLesson builds the graph once, then runs every mode on it.
func RunLesson(ctx context.Context, log io.Writer, o LessonOptions) (LessonResult, error) {
	var res LessonResult
	pairs, err := o.Graph.Follows()
	if err != nil {
		return res, err
	}
	res.Users, res.Follows, res.Celebrity = o.Graph.Users, len(pairs), o.Graph.CelebrityFollowers
	in := make([]int, o.Graph.Users)
	for _, p := range pairs {
		in[p[1]]++
	}
	res.TopFollowers = slices.Max(in[1:])
	started := time.Now()
	var ids []int64
	for _, m := range o.Modes {
		r, newIDs, err := runMode(ctx, log, o, m, pairs, ids)
		if err != nil {
			return res, fmt.Errorf("feed lesson, %s: %w", m, err)
		}
		if ids == nil {
			ids = newIDs
			res.SeedSeconds = time.Since(started).Seconds()
		}
		res.Modes = append(res.Modes, r)
	}
	return res, nil
}

// runMode opens a feed in mode m on the lesson's store (seeding the graph
// the first time), puts it under load, and measures.
func runMode(ctx context.Context, log io.Writer, o LessonOptions, m timeline.Mode, pairs [][2]int, ids []int64) (ModeResult, []int64, error) {
	r := ModeResult{Mode: m.String()}
	e := host.Engines{Data: o.Dir, DB: o.DB, Cache: o.Cache, Namespace: fmt.Sprintf("feedlesson-%s-%d", m, time.Now().UnixNano())}
	if e.DB == "" {
		e.DB = "sqlite://" + filepath.Join(o.Dir, "feed.db")
	}
	d, err := host.Open(ctx, e, slog.New(slog.DiscardHandler))
	if err != nil {
		return r, nil, err
	}
	defer d.Close()
	if d.Redis != nil { // the run's keys leave a shared Redis with it
		defer func() {
			iter := d.Redis.Scan(context.Background(), 0, "scalelab:"+e.Namespace+":*", 1000).Iterator()
			var keys []string
			for iter.Next(context.Background()) {
				if keys = append(keys, iter.Val()); len(keys) == 1000 {
					d.Redis.Unlink(context.Background(), keys...)
					keys = keys[:0]
				}
			}
			if len(keys) > 0 {
				d.Redis.Unlink(context.Background(), keys...)
			}
		}()
	}
	cfg := DefaultConfig()
	cfg.Mode, cfg.Celebrity = m, o.Celebrity
	cfg.TimelineSets = o.Graph.Users + 1
	cfg.WriteLimit, cfg.SignupLimit = "off", "off"
	s, err := New(ctx, d, cfg)
	if err != nil {
		return r, nil, err
	}
	defer s.Close(context.Background())
	if ids == nil {
		fmt.Fprintf(log, "seeding %d users and %d follows…\n", o.Graph.Users, len(pairs))
		if ids, err = s.GenerateGraph(ctx, o.Graph); err != nil {
			return r, nil, err
		}
	}
	if err := s.store.resetPosts(ctx); err != nil {
		return r, nil, err
	}
	// Everyone counts as active: every timeline that has pushed authors is
	// cached (empty, as the store has no posts), so push writes to every
	// follower, as it would for a network of daily readers.
	if m != timeline.Pull {
		for _, id := range ids {
			if _, err := s.caches.timelines.Begin(ctx, idKey(id)); err != nil {
				return r, nil, err
			}
			if err := s.caches.timelines.Fill(ctx, idKey(id), nil, 0); err != nil {
				return r, nil, err
			}
		}
	}
	fmt.Fprintf(log, "%s: %v of load: %d readers back to back, %d posts/s, %d celebrity posts\n", m, o.Duration, o.Readers, o.PostRate, o.CelebrityPosts)
	lat, celebPosts, err := s.load(ctx, o, ids)
	if err != nil {
		return r, nil, err
	}
	settleCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for s.fanout.outstanding.Load() > 0 {
		select {
		case <-settleCtx.Done():
			return r, nil, fmt.Errorf("fan-out did not finish within 2 minutes of the load")
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.Posts = int(counterValue(s.metrics.posts)) - len(celebPosts)
	r.Entries = counterValue(s.metrics.entries)
	r.Reads = len(lat)
	r.ReadsPerS = float64(len(lat)) / o.Duration.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		r.ReadP50MS = float64(lat[len(lat)/2]) / 1e6
		r.ReadP99MS = float64(lat[len(lat)*99/100]) / 1e6
	}
	for _, v := range append(s.metrics.recentVisibility(), s.metrics.largestFanouts()...) {
		if slices.Contains(celebPosts, v.Post) {
			r.CelebTargets = max(r.CelebTargets, v.Targets)
			r.CelebVisibleS = max(r.CelebVisibleS, v.Seconds)
		}
	}
	r.Entries -= float64(r.CelebTargets * len(celebPosts))
	if r.Posts > 0 {
		r.PerPost = r.Entries / float64(r.Posts)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.HeapMB = float64(ms.HeapAlloc) / (1 << 20)
	if fp := s.caches.footprint(); fp != nil {
		r.CachedSets, r.CachedIDs = int(fp["timelines"][0]), fp["timelines"][1]
	}
	// The celebrity's last post, on a sample of its followers' first pages.
	if len(celebPosts) > 0 {
		last := celebPosts[len(celebPosts)-1]
		followers, err := s.store.followers(ctx, ids[0], 0, 200)
		if err != nil {
			return r, nil, err
		}
		for _, f := range followers {
			p, err := s.Timeline(ctx, f.ID, 0, 20)
			if err != nil {
				return r, nil, err
			}
			r.CelebChecked++
			if slices.ContainsFunc(p.Items, func(it Item) bool { return it.ID == last }) {
				r.CelebCheckedOK++
			}
		}
	}
	if err := s.checkAgainstTruth(ctx, o, ids, &r); err != nil {
		return r, nil, err
	}
	fmt.Fprintf(log, "%s: %d posts, %.1f entries per post; celebrity post pushed to %d, every follower had it after %.3f s; reads %.0f/s p50 %.2f ms p99 %.2f ms; %d of %d readers checked: %d missing, %d duplicated, %d extra\n",
		m, r.Posts, r.PerPost, r.CelebTargets, r.CelebVisibleS, r.ReadsPerS, r.ReadP50MS, r.ReadP99MS, r.Checked, o.Check, r.Missing, r.Duplicated, r.Extra)
	return r, ids, nil
}

// load runs the mixed load and returns each read's latency and the
// celebrity's posts.
func (s *Service) load(ctx context.Context, o LessonOptions, ids []int64) ([]time.Duration, []int64, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		if ctx.Err() == nil {
			firstErr.CompareAndSwap(nil, &err)
			cancel()
		}
	}
	for g := 0; g < o.Readers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var mine []time.Duration
			for ctx.Err() == nil {
				reader := ids[rng.IntN(len(ids))]
				t0 := time.Now()
				if _, err := s.Timeline(ctx, reader, 0, 20); err != nil {
					fail(err)
					break
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(g)
	}
	var celebPosts []int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(99, 1))
		tick := time.NewTicker(time.Second / time.Duration(max(o.PostRate, 1)))
		defer tick.Stop()
		start := time.Now()
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			author := ids[1+rng.IntN(len(ids)-1)]
			if o.CelebrityPosts > 0 && time.Since(start) >= time.Duration(len(celebPosts)+1)*o.Duration/time.Duration(o.CelebrityPosts+1) {
				author = ids[0]
			}
			n++
			p, err := s.CreatePost(ctx, author, NewPost{Body: fmt.Sprintf("post %d", n)})
			if err != nil {
				fail(err)
				return
			}
			if author == ids[0] {
				celebPosts = append(celebPosts, p.ID)
			}
		}
	}()
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, nil, *e
	}
	return lat, celebPosts, nil
}

// checkAgainstTruth compares readers' whole timelines with the store's
// truth: the live posts of everyone each follows and its own. The
// celebrity's followers are among them.
func (s *Service) checkAgainstTruth(ctx context.Context, o LessonOptions, ids []int64, r *ModeResult) error {
	rng := rand.New(rand.NewPCG(7, 7))
	readers := map[int64]bool{}
	celebFollowers, err := s.store.followers(ctx, ids[0], 0, max(o.Check/2, 1))
	if err != nil {
		return err
	}
	for _, f := range celebFollowers {
		readers[f.ID] = true
	}
	for len(readers) < o.Check && len(readers) < len(ids) {
		readers[ids[rng.IntN(len(ids))]] = true
	}
	for reader := range readers {
		fs, err := s.store.followees(ctx, reader)
		if err != nil {
			return err
		}
		authors := []int64{reader}
		for _, f := range fs {
			authors = append(authors, f.ID)
		}
		truth, err := s.store.postsOf(ctx, authors, 0, 1_000_000)
		if err != nil {
			return err
		}
		var got []int64
		cursor := int64(0)
		for {
			p, err := s.Timeline(ctx, reader, cursor, MaxPage)
			if err != nil {
				return err
			}
			for _, it := range p.Items {
				got = append(got, it.ID)
			}
			if p.Next == "" {
				break
			}
			if _, err := fmt.Sscan(p.Next, &cursor); err != nil {
				return err
			}
		}
		m, d, x := compareWithTruth(got, truth)
		r.Missing, r.Duplicated, r.Extra = r.Missing+m, r.Duplicated+d, r.Extra+x
		r.Checked++
	}
	return nil
}

// compareWithTruth counts a timeline's posts the truth has and it lacks
// (missing), shows more than once (duplicated, each repeat), and shows
// though the truth lacks them (extra).
func compareWithTruth(got, truth []int64) (missing, duplicated, extra int) {
	seen := map[int64]int{}
	for _, id := range got {
		seen[id]++
	}
	want := make(map[int64]bool, len(truth))
	for _, id := range truth {
		want[id] = true
		if seen[id] == 0 {
			missing++
		}
	}
	for id, n := range seen {
		duplicated += n - 1
		if !want[id] {
			extra++
		}
	}
	return missing, duplicated, extra
}
