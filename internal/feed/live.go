package feed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

const (
	liveTopic       = "feed-live"
	maxListeners    = 2000
	maxPerUser      = 4
	liveHeartbeat   = 25 * time.Second
	liveMaxDuration = 30 * time.Minute
)

// liveEvent is what every instance hears of a post or a delete; each
// passes it on to its own listeners who follow the author.
type liveEvent struct {
	Kind string `json:"kind"` // "post" or "delete"
	Item Item   `json:"item"`
}

// live pushes new posts to signed-in readers' open pages (server-sent
// events). It is a courtesy on top of the timeline, not part of it: a
// reader who misses an event (a dropped connection, a full buffer) sees
// the post on its next read.
type live struct {
	s        *Service
	sub      broker.Consumer
	mu       sync.Mutex
	watchers map[int64][]chan liveEvent
	count    int
}

func startLive(ctx context.Context, s *Service) (*live, error) {
	l := &live{s: s, watchers: map[int64][]chan liveEvent{}}
	sub, err := s.broker.Subscribe(ctx, liveTopic, l.deliver)
	if err != nil {
		return nil, fmt.Errorf("feed: subscribe to live posts: %w", err)
	}
	l.sub = sub
	return l, nil
}

func (l *live) stop() { l.sub.Stop() }

// announce tells every instance of a new post.
func (l *live) announce(ctx context.Context, p Post) {
	us, err := l.s.users(ctx, []int64{p.AuthorID})
	if err != nil {
		return
	}
	it := Item{Post: p, Author: brief(us[p.AuthorID])}
	if p.ShareOf != 0 {
		if ps, err := l.s.posts(ctx, []int64{p.ShareOf}); err == nil {
			if sp, ok := ps[p.ShareOf]; ok {
				if sus, err := l.s.users(ctx, []int64{sp.AuthorID}); err == nil {
					it.Shared = &SharedPost{Post: sp, Author: brief(sus[sp.AuthorID])}
				}
			}
		}
	}
	l.publish(ctx, liveEvent{Kind: "post", Item: it})
}

func (l *live) publish(ctx context.Context, e liveEvent) {
	if b, err := json.Marshal(e); err == nil {
		_ = l.s.broker.Publish(ctx, liveTopic, b)
	}
}

func (l *live) deliver(data []byte) {
	var e liveEvent
	if json.Unmarshal(data, &e) != nil || e.Item.AuthorID == 0 {
		return
	}
	l.mu.Lock()
	readers := make([]int64, 0, len(l.watchers))
	for r := range l.watchers {
		readers = append(readers, r)
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, r := range readers {
		if r != e.Item.AuthorID {
			fs, err := l.s.followeesOf(ctx, r)
			if err != nil || !slices.Contains(fs, e.Item.AuthorID) {
				continue
			}
		}
		l.mu.Lock()
		for _, ch := range l.watchers[r] {
			select {
			case ch <- e:
			default: // a slow page misses it and reads it later
			}
		}
		l.mu.Unlock()
	}
}

func (l *live) watch(reader int64) (chan liveEvent, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count >= maxListeners || len(l.watchers[reader]) >= maxPerUser {
		return nil, nil, apperr.E(apperr.TooManyRequests, "too many live connections; close another page")
	}
	ch := make(chan liveEvent, 32)
	l.watchers[reader] = append(l.watchers[reader], ch)
	l.count++
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.watchers[reader] = slices.DeleteFunc(l.watchers[reader], func(c chan liveEvent) bool { return c == ch })
		if len(l.watchers[reader]) == 0 {
			delete(l.watchers, reader)
		}
		l.count--
	}, nil
}

func (l *live) listeners() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// serve streams a reader's live events until it leaves, the stream's
// time is up (the page reconnects), or the server stops.
func (l *live) serve(w http.ResponseWriter, r *http.Request, reader int64) {
	ch, done, err := l.watch(reader)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	defer done()
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, ": live\n\n")
	_ = rc.Flush()
	beat := time.NewTicker(liveHeartbeat)
	defer beat.Stop()
	end := time.NewTimer(liveMaxDuration)
	defer end.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-beat.C:
			fmt.Fprint(w, ": beat\n\n")
		case e := <-ch:
			b, _ := json.Marshal(e.Item)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, b)
		}
		if rc.Flush() != nil {
			return
		}
	}
}
