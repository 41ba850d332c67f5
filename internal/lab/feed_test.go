package lab

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/feed"
	"github.com/scalelab/scalelab/internal/feed/timeline"
)

// A small run of the real lesson: every mode correct, and the figures
// show the trade (push writes to every one of the celebrity's followers,
// pull writes nothing, hybrid writes nothing for the celebrity). Ordinary
// posts are not compared: each mode makes a different number of them, by
// different authors, in its run.
func TestFeedLessonRuns(t *testing.T) {
	o := feed.LessonOptions{Graph: feed.GraphSpec{Users: 600, CelebrityFollowers: 400, MeanFollows: 8, Zipf: 1.4, Seed: 3},
		Celebrity: 100, Modes: []timeline.Mode{timeline.Push, timeline.Pull, timeline.Hybrid}, Duration: 1500 * time.Millisecond,
		Readers: 2, PostRate: 40, CelebrityPosts: 2, Check: 40, Dir: t.TempDir()}
	res, err := feed.RunLesson(context.Background(), io.Discard, o)
	if err != nil {
		t.Fatal(err)
	}
	r := feedReport(o, res)
	if !r.Passed {
		t.Fatalf("a mode served wrong timelines: %v", r.Lesson)
	}
	if r.Figures["push_celebrity_targets"] != 400 || r.Figures["hybrid_celebrity_targets"] != 0 || r.Figures["pull_entries_per_post"] != 0 {
		t.Fatalf("figures: %v", r.Figures)
	}
	if !strings.Contains(strings.Join(r.Lesson, " "), "0 missing, 0 duplicated, 0 extra") {
		t.Fatalf("lesson: %v", r.Lesson)
	}
}
