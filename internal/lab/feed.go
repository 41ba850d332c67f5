package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/feed"
	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/plot"
)

// The feed experiment: one generated social graph with Zipf-distributed
// popularity and one celebrity, and the same mixed load of reads and
// posts in push, pull and hybrid. Its lesson is the trade the design is
// about: push makes reads cheap and a celebrity's post expensive (one
// timeline entry per follower, seconds until the last follower has it),
// pull makes posts free and reads merge many lists, and hybrid pushes the
// many small accounts and pulls the few large ones, writing a fraction of
// push's entries while reading almost as fast.

func feedExperiment() Experiment {
	return Experiment{
		Name: "feed", System: "feed",
		Summary: "push vs pull vs hybrid on one Zipf social graph with a celebrity: entries written per post, time until a celebrity's post reaches every follower, read p50/p99, cache size, and every timeline checked against the truth",
		Quick:   map[string]string{"users": "12000", "celebrity-followers": "10000", "celebrity": "2000", "duration": "4s", "check": "100"},
		Bind: func(fs *pflag.FlagSet) Runner {
			o := feed.LessonOptions{Graph: feed.GraphSpec{Users: 120_000, CelebrityFollowers: 100_000, MeanFollows: 20, Zipf: 1.4, Seed: 1},
				Celebrity: 10_000, Duration: 15 * time.Second, Readers: 4, PostRate: 100, CelebrityPosts: 3, Check: 300}
			var modes string
			fs.IntVar(&o.Graph.Users, "users", o.Graph.Users, "accounts in the graph")
			fs.IntVar(&o.Graph.CelebrityFollowers, "celebrity-followers", o.Graph.CelebrityFollowers, "followers of the celebrity (account 0)")
			fs.IntVar(&o.Graph.MeanFollows, "follows", o.Graph.MeanFollows, "accounts each account follows, on average")
			fs.Float64Var(&o.Graph.Zipf, "zipf", o.Graph.Zipf, "the popularity exponent (> 1; larger: more skewed)")
			fs.IntVar(&o.Celebrity, "celebrity", o.Celebrity, "hybrid pulls accounts with at least this many followers")
			fs.DurationVar(&o.Duration, "duration", o.Duration, "each mode's load")
			fs.IntVar(&o.Readers, "readers", o.Readers, "goroutines reading timelines back to back")
			fs.IntVar(&o.PostRate, "posts", o.PostRate, "posts a second by random accounts")
			fs.IntVar(&o.CelebrityPosts, "celebrity-posts", o.CelebrityPosts, "posts by the celebrity during each mode's load")
			fs.IntVar(&o.Check, "check", o.Check, "readers whose whole timelines are checked against the truth")
			fs.StringVar(&modes, "modes", "push,pull,hybrid", "the modes to run")
			fs.StringVar(&o.DB, "db", "", "the SQL store (default: SQLite in the run's directory)")
			fs.StringVar(&o.Cache, "cache", "", "the caches: in-process (default) or redis://…")
			return func(ctx context.Context, env Env) (*Report, error) {
				o.Modes = nil
				for _, m := range strings.Split(modes, ",") {
					mode, ok := timeline.ParseMode(strings.TrimSpace(m))
					if !ok || mode == timeline.Inherit {
						return nil, apperr.Usagef("--modes: push, pull and hybrid, comma-separated")
					}
					o.Modes = append(o.Modes, mode)
				}
				if o.Graph.Users < 100 || o.Graph.Users > 2_000_000 || o.Duration < time.Second || o.Readers < 1 || o.PostRate < 1 || o.Check < 1 {
					return nil, apperr.Usagef("want 100 ≤ --users ≤ 2000000, --duration ≥ 1s, --readers, --posts and --check ≥ 1")
				}
				o.Dir = filepath.Join(env.Dir, "work")
				_ = os.RemoveAll(o.Dir)
				if err := os.MkdirAll(o.Dir, 0o755); err != nil {
					return nil, err
				}
				defer os.RemoveAll(o.Dir)
				res, err := feed.RunLesson(ctx, env.Log, o)
				if err != nil {
					return nil, err
				}
				return feedReport(o, res), nil
			}
		},
	}
}

func feedReport(o feed.LessonOptions, res feed.LessonResult) *Report {
	r := &Report{Experiment: "feed", System: "feed", Passed: true, Figures: map[string]float64{
		"users": float64(res.Users), "follows": float64(res.Follows), "celebrity_followers": float64(res.Celebrity), "top_other_followers": float64(res.TopFollowers)}}
	by := map[string]feed.ModeResult{}
	for _, m := range res.Modes {
		by[m.Mode] = m
		for k, v := range map[string]float64{"entries_per_post": m.PerPost, "celebrity_targets": float64(m.CelebTargets), "celebrity_visible_s": m.CelebVisibleS,
			"read_p50_ms": m.ReadP50MS, "read_p99_ms": m.ReadP99MS, "reads_per_s": m.ReadsPerS, "cached_ids": float64(m.CachedIDs), "heap_mb": m.HeapMB,
			"missing": float64(m.Missing), "duplicated": float64(m.Duplicated), "extra": float64(m.Extra)} {
			r.Figures[m.Mode+"_"+k] = v
		}
		if m.Missing+m.Duplicated+m.Extra > 0 || m.CelebCheckedOK < m.CelebChecked {
			r.Passed = false
			r.Lesson = append(r.Lesson, fmt.Sprintf("WRONG TIMELINES in %s: %d missing, %d duplicated, %d extra posts over %d readers; %d of %d celebrity followers saw its last post.",
				m.Mode, m.Missing, m.Duplicated, m.Extra, m.Checked, m.CelebCheckedOK, m.CelebChecked))
		}
	}
	if r.Passed {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Every mode served every checked reader (%d each, half of them the celebrity's followers) exactly the truth: 0 missing, 0 duplicated, 0 extra posts.", o.Check))
	}
	push, okPush := by["push"]
	pull, okPull := by["pull"]
	hyb, okHyb := by["hybrid"]
	if okPush {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Push wrote %.1f timeline entries per ordinary post and %d for each celebrity post; the last of the celebrity's %d followers had it %.2f s after it was posted. Its reads are one cached list: p50 %.2f ms, p99 %.2f ms.",
			push.PerPost, push.CelebTargets, res.Celebrity, push.CelebVisibleS, push.ReadP50MS, push.ReadP99MS))
	}
	if okPull {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Pull wrote nothing at post time, and every post was visible at once; each read merges every followee's list instead: p50 %.2f ms, p99 %.2f ms.", pull.ReadP50MS, pull.ReadP99MS))
		if okPush && push.ReadP99MS > 0 {
			r.Lesson[len(r.Lesson)-1] += fmt.Sprintf(" That is %.1f× push's p99.", pull.ReadP99MS/push.ReadP99MS)
		}
	}
	if okHyb {
		line := fmt.Sprintf("Hybrid (pulling accounts with ≥ %d followers) wrote %.1f entries per ordinary post and %d for the celebrity's; its post was visible to every follower in %.2f s; reads p50 %.2f ms, p99 %.2f ms.",
			o.Celebrity, hyb.PerPost, hyb.CelebTargets, hyb.CelebVisibleS, hyb.ReadP50MS, hyb.ReadP99MS)
		if okPush && push.Entries > 0 {
			total := func(m feed.ModeResult) float64 { return m.Entries + float64(m.CelebTargets*o.CelebrityPosts) }
			line += fmt.Sprintf(" In all it wrote %.0f entries against push's %.0f (%.2f of them).", total(hyb), total(push), total(hyb)/total(push))
		}
		r.Lesson = append(r.Lesson, line)
	}
	var groups []string
	var perPost, p99, visible []float64
	for _, m := range res.Modes {
		groups = append(groups, m.Mode)
		perPost, p99, visible = append(perPost, m.PerPost), append(p99, m.ReadP99MS), append(visible, m.CelebVisibleS)
	}
	r.Plots = map[string]string{
		"writes.svg":  plot.Bars{Title: "Timeline entries written per ordinary post", YLabel: "entries", Groups: groups, Series: []string{"entries per post"}, Values: [][]float64{perPost}}.SVG(),
		"reads.svg":   plot.Bars{Title: "Timeline read p99", YLabel: "ms", Groups: groups, Series: []string{"p99"}, Values: [][]float64{p99}}.SVG(),
		"visible.svg": plot.Bars{Title: fmt.Sprintf("A celebrity's post (%d followers): time until every follower has it", res.Celebrity), YLabel: "s", Groups: groups, Series: []string{"visible to all"}, Values: [][]float64{visible}}.SVG(),
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# The news feed: push, pull and hybrid\n\nA generated graph of %d accounts and %d follows (popularity Zipf %.1f; the most followed account besides the celebrity has %d followers) and a celebrity with %d followers. Each mode ran %v of load: %d readers reading back to back, %d posts/s by random accounts, %d celebrity posts; SQL store %s, caches %s.\n\n",
		res.Users, res.Follows, o.Graph.Zipf, res.TopFollowers, res.Celebrity, o.Duration, o.Readers, o.PostRate, o.CelebrityPosts, map[bool]string{true: "SQLite", false: o.DB}[o.DB == ""], map[bool]string{true: "in-process", false: "in Redis"}[o.Cache == ""])
	b.WriteString("| mode | posts | entries per post | celebrity post pushed to | visible to all after (s) | reads/s | read p50 ms | read p99 ms | timeline sets | IDs cached | heap MB | checked | missing | duplicated | extra |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range res.Modes {
		fmt.Fprintf(&b, "| %s | %d | %.1f | %d | %.3f | %.0f | %.2f | %.2f | %d | %d | %.0f | %d | %d | %d | %d |\n", m.Mode, m.Posts, m.PerPost, m.CelebTargets, m.CelebVisibleS,
			m.ReadsPerS, m.ReadP50MS, m.ReadP99MS, m.CachedSets, m.CachedIDs, m.HeapMB, m.Checked, m.Missing, m.Duplicated, m.Extra)
	}
	b.WriteString("\n" + lessonMarkdown(r))
	r.Body = b.String()
	return r
}
