package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/broker"
)

const (
	fanoutTopic = "feed-fanout"
	fanoutGroup = "feed-fanout"
)

// Job kinds. A post, delete or rebalance job is a plan: it pages the
// author's followers and queues one batch job per BatchSize of them that
// need the write; a batch job writes to those followers' cached timelines.
// Every write is idempotent (a set holds an ID once), so a job redelivered
// after a worker died redoes its work and duplicates nothing, and a job is
// acknowledged only when its work is done, so nothing is lost.
const (
	jobPost      = "post"
	jobDelete    = "delete"
	jobRebalance = "rebalance"
	jobBatch     = "batch"
)

// job is a fan-out message.
type job struct {
	Kind   string  `json:"kind"`
	Post   int64   `json:"post,omitempty"`
	Author int64   `json:"author"`
	At     int64   `json:"at,omitempty"` // the post's time, Unix ms: what fan-out lag is measured from
	Users  []int64 `json:"users,omitempty"`
	Posts  []int64 `json:"posts,omitempty"` // a rebalance batch: the author's recent posts
	Remove bool    `json:"remove,omitempty"`
	Before int     `json:"before,omitempty"`
	After  int     `json:"after,omitempty"`
}

func (j job) valid() bool {
	switch j.Kind {
	case jobPost, jobDelete:
		return j.Post > 0 && j.Author > 0
	case jobRebalance:
		return j.Author > 0 && j.Before >= 0 && j.After >= 0
	case jobBatch:
		return j.Author > 0 && (j.Post > 0) != (len(j.Posts) > 0) && len(j.Users) > 0
	}
	return false
}

// fanout runs this instance's fan-out workers.
type fanout struct {
	s         *Service
	consumers []broker.Consumer
	// pending counts each post's batches not yet written, for the time a
	// post takes to reach every pushed follower. It sees the batches this
	// instance runs; with several instances each sees its share.
	mu      sync.Mutex
	pending map[int64]*pendingPost
	// outstanding is the jobs this instance queued and not yet finished
	// (those another instance takes are finished there): zero on a single
	// instance means every fan-out so far is written.
	outstanding atomic.Int64
}

type pendingPost struct {
	at      int64
	batches int
	targets int
}

func startFanout(ctx context.Context, s *Service) (*fanout, error) {
	f := &fanout{s: s, pending: map[int64]*pendingPost{}}
	if err := s.broker.Declare(ctx, fanoutTopic, fanoutGroup, broker.GroupAckWait(s.cfg.AckWait)); err != nil {
		return nil, fmt.Errorf("feed: declare fan-out queue: %w", err)
	}
	for i := 0; i < s.cfg.Workers; i++ {
		c, err := s.broker.Consume(ctx, fanoutTopic, fanoutGroup, f.handle, broker.MemberPrefetch(4), broker.GroupAckWait(s.cfg.AckWait))
		if err != nil {
			f.stop()
			return nil, fmt.Errorf("feed: start fan-out worker: %w", err)
		}
		f.consumers = append(f.consumers, c)
	}
	return f, nil
}

func (f *fanout) stop() {
	for _, c := range f.consumers {
		c.Stop()
	}
}

func (f *fanout) publish(ctx context.Context, j job) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	f.outstanding.Add(1)
	if err := f.s.broker.Publish(ctx, fanoutTopic, b); err != nil {
		f.outstanding.Add(-1)
		return err
	}
	return nil
}

// handle runs one job; a malformed one is dropped (redelivering it would
// not make it valid), a failed one is redelivered.
func (f *fanout) handle(ctx context.Context, m *broker.Message) {
	var j job
	if err := json.Unmarshal(m.Data, &j); err != nil || !j.valid() {
		f.s.logger.Warn("feed: dropping a malformed fan-out job", "err", err)
		f.s.metrics.jobs.WithLabelValues("malformed").Inc()
		_ = m.Ack()
		f.outstanding.Add(-1)
		return
	}
	if h := f.s.cfg.fanoutHook; h != nil && h(j) {
		return
	}
	var err error
	if j.Kind == jobBatch {
		err = f.batch(ctx, j)
	} else {
		err = f.plan(ctx, j, m)
	}
	if err != nil {
		f.s.logger.Warn("feed: fan-out job failed; it will be redelivered", "kind", j.Kind, "post", j.Post, "err", err)
		f.s.metrics.jobs.WithLabelValues("failed").Inc()
		_ = m.Nak()
		return
	}
	f.s.metrics.jobs.WithLabelValues(j.Kind).Inc()
	_ = m.Ack()
	f.outstanding.Add(-1)
}

// pushedModes is the reader modes whose pair with an author of this many
// followers is pushed, as stored ("" for the deployment's).
func (f *fanout) pushedModes(followers int) (modes []string, all bool) {
	for _, m := range []timeline.Mode{timeline.Inherit, timeline.Push, timeline.Pull, timeline.Hybrid} {
		if f.s.policy.Pushed(m, followers) {
			name := m.String()
			if m == timeline.Inherit {
				name = ""
			}
			modes = append(modes, name)
		}
	}
	return modes, len(modes) == 4
}

// plan pages the author's followers and queues the batches.
func (f *fanout) plan(ctx context.Context, j job, m *broker.Message) error {
	s := f.s
	us, err := s.store.users(ctx, []int64{j.Author})
	if err != nil {
		return err
	}
	count := us[j.Author].Followers
	var modes []string
	all := true
	var posts []int64
	switch j.Kind {
	case jobPost:
		modes, all = f.pushedModes(count)
	case jobRebalance:
		if posts, err = s.store.recentPosts(ctx, j.Author, 0, s.cfg.AuthorCap); err != nil {
			return err
		}
		if len(posts) == 0 {
			return nil
		}
	}
	var batches [][]int64
	targets := 0
	for after := int64(0); ; {
		var page []timeline.Follower
		if all {
			page, err = s.store.followers(ctx, j.Author, after, s.cfg.BatchSize)
		} else {
			page, err = s.store.followersIn(ctx, j.Author, modes, after, s.cfg.BatchSize)
		}
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		var users []int64
		switch j.Kind {
		case jobRebalance:
			users = s.policy.Rebalanced(page, j.Before, j.After)
		default: // a post's pushed followers, or for a delete every follower it may have reached
			for _, fl := range page {
				if j.Kind == jobDelete || s.policy.Pushed(fl.Mode, count) {
					users = append(users, fl.ID)
				}
			}
		}
		if len(users) > 0 {
			batches = append(batches, users)
			targets += len(users)
		}
		_ = m.InProgress() // a celebrity's follower list takes a while to page
	}
	if j.Kind == jobPost {
		f.track(j.Post, j.At, len(batches), targets)
		s.metrics.targets.Observe(float64(targets))
	}
	for _, users := range batches {
		b := job{Kind: jobBatch, Post: j.Post, Author: j.Author, At: j.At, Users: users, Remove: j.Kind == jobDelete}
		if j.Kind == jobRebalance {
			b.Post, b.Posts = 0, posts
		}
		if err := f.publish(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// batch writes one batch into the followers' cached timelines.
func (f *fanout) batch(ctx context.Context, j job) error {
	keys := idKeys(j.Users)
	tl := f.s.caches.timelines
	switch {
	case j.Remove:
		return tl.Remove(ctx, keys, j.Post)
	case len(j.Posts) > 0:
		if err := tl.Add(ctx, keys, j.Posts...); err != nil {
			return err
		}
		f.s.metrics.entries.Add(float64(len(keys) * len(j.Posts)))
		return nil
	}
	if err := tl.Add(ctx, keys, j.Post); err != nil {
		return err
	}
	f.s.metrics.entries.Add(float64(len(keys)))
	if j.At > 0 {
		f.s.metrics.lag.Observe(f.s.cfg.Now().Sub(time.UnixMilli(j.At)).Seconds())
	}
	f.done(j.Post)
	return nil
}

func (f *fanout) track(post, at int64, batches, targets int) {
	if batches == 0 {
		f.s.metrics.visible.Observe(0)
		f.s.recordVisible(post, targets, 0)
		return
	}
	f.mu.Lock()
	f.pending[post] = &pendingPost{at: at, batches: batches, targets: targets}
	f.mu.Unlock()
}

func (f *fanout) done(post int64) {
	f.mu.Lock()
	p, ok := f.pending[post]
	if ok {
		p.batches--
		if p.batches > 0 {
			ok = false
		} else {
			delete(f.pending, post)
		}
	}
	f.mu.Unlock()
	if ok {
		d := f.s.cfg.Now().Sub(time.UnixMilli(p.at))
		f.s.metrics.visible.Observe(d.Seconds())
		f.s.recordVisible(post, p.targets, d)
	}
}

// inFlight is the posts whose fan-out this instance has not finished.
func (f *fanout) inFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}
