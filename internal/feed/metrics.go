package feed

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metrics are the feed's Prometheus series; the lesson's figures are read
// from them.
type metrics struct {
	posts    prometheus.Counter
	entries  prometheus.Counter
	rebuilds prometheus.Counter
	targets  prometheus.Histogram
	lag      prometheus.Histogram
	visible  prometheus.Histogram
	reads    *prometheus.HistogramVec
	jobs     *prometheus.CounterVec

	mu      sync.Mutex
	recent  []Visibility // the latest fan-outs, newest last
	largest []Visibility // the fan-outs to the most followers, largest first
}

// Visibility is how long one post took to reach every pushed follower.
type Visibility struct {
	Post    int64   `json:"post,string"`
	Targets int     `json:"targets"`
	Seconds float64 `json:"seconds"`
}

func newMetrics(reg prometheus.Registerer) *metrics {
	secs := []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
	m := &metrics{
		posts: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_feed_posts_total", Help: "Posts (and shares) created."}),
		entries: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_feed_timeline_entries_total",
			Help: "Timeline entries fan-out wrote (one per pushed follower per post): write amplification is this over posts."}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_feed_timeline_rebuilds_total",
			Help: "Home timelines rebuilt from the store because they were not cached (new, idle or evicted readers)."}),
		targets: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scalelab_feed_fanout_targets",
			Help: "Followers one post was pushed to.", Buckets: []float64{0, 1, 10, 100, 1000, 10_000, 100_000, 1_000_000}}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scalelab_feed_fanout_lag_seconds",
			Help: "From a post to one of its fan-out batches written.", Buckets: secs}),
		visible: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "scalelab_feed_visible_seconds",
			Help: "From a post to its last fan-out batch written: when every follower's timeline has it.", Buckets: secs}),
		reads: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "scalelab_feed_timeline_read_seconds",
			Help: "Home timeline reads by the reader's mode.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}, []string{"mode"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "scalelab_feed_fanout_jobs_total",
			Help: "Fan-out jobs done by kind (post, delete, rebalance, batch), and failed or malformed ones."}, []string{"kind"}),
	}
	reg.MustRegister(m.posts, m.entries, m.rebuilds, m.targets, m.lag, m.visible, m.reads, m.jobs)
	return m
}

func (s *Service) recordVisible(post int64, targets int, d time.Duration) {
	m := s.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	v := Visibility{Post: post, Targets: targets, Seconds: d.Seconds()}
	m.recent = append(m.recent, v)
	if len(m.recent) > 20 {
		m.recent = m.recent[len(m.recent)-20:]
	}
	// The largest fan-outs stay in view however many small ones follow.
	i := sort.Search(len(m.largest), func(i int) bool { return m.largest[i].Targets <= targets })
	m.largest = slices.Insert(m.largest, i, v)
	if len(m.largest) > 10 {
		m.largest = m.largest[:10]
	}
}

func (m *metrics) largestFanouts() []Visibility {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Visibility{}, m.largest...)
}

func (m *metrics) recentVisibility() []Visibility {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Visibility{}, m.recent...)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if c.Write(&m) != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
