package lab

import (
	"strings"
	"testing"
	"time"
)

func TestCrawlerLessonFollowsTheFigures(t *testing.T) {
	o := CrawlerOptions{Hosts: 50}
	trials := []crawlTrial{
		{Delay: 10 * time.Millisecond, Pages: 1500, Seconds: 12, FetchMS: 2, FloorS: 10, Busiest: "host5.test", BusiestN: 40},
		{Delay: 160 * time.Millisecond, Pages: 1500, Seconds: 60, FetchMS: 2, FloorS: 50, Busiest: "host5.test", BusiestN: 40},
	}
	r := crawlerReport(o, trials)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"0 robots, 0 politeness and 0 duplicate", "Delay 10ms: the crawl took 12.00 s (125.0 pages/s); its busiest host, host5.test, needed 10.00 s for its 40 fetches",
		"took 1.20× that floor", "allow 4167 pages/s", "from 12.00 to 60.00 s (5.0×) as its politeness floor went from 10.00 to 50.00 s (5.0×)"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q:\n%s", want, text)
		}
	}
	if !r.Passed {
		t.Fatal("a polite run failed")
	}
	trials[1].Politeness = 2
	if r := crawlerReport(o, trials); r.Passed || !strings.Contains(strings.Join(r.Lesson, " "), "NOT POLITE: the web counted 2 violations") {
		t.Fatalf("an impolite run passed: %v", r.Lesson)
	}
}
