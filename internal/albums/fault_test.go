package albums

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/promscrape"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The broker goes away: reviews get 503 with Retry-After, quickly, and once
// the breaker is open without touching the broker; when the broker is back
// the breaker closes. Every accepted review is counted exactly once.
func TestBrokerOutageTripsTheBreaker(t *testing.T) {
	_, portStr, _ := net.SplitHostPort(proctest.FreeAddr(t))
	port, _ := strconv.Atoi(portStr)
	storeDir := t.TempDir()
	nats := proctest.StartNATS(t, port, storeDir)
	t.Cleanup(func() { nats.Shutdown() })
	dataDir := t.TempDir()
	cfg := testConfig()
	cfg.Publish.Timeout = 300 * time.Millisecond
	cfg.Publish.BreakerDelay = time.Second
	e := host.Engines{Broker: "nats://127.0.0.1:" + portStr, DB: "sqlite://" + filepath.Join(dataDir, "albums.db"), Data: dataDir}
	base := start(t, e, cfg)
	id := createAlbum(t, base, "Artist", "Outage", 2001, pngImage(t, 2, 2)).AlbumID
	like := base + "/api/v1/albums/" + id + "/reviews/like"

	accepted, maybe := 0, 0 // maybe: a timeout whose publish may have been stored
	review := func() (int, http.Header, time.Duration) {
		begin := time.Now()
		resp := send(t, "POST", like, "", nil, nil)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			accepted++
		case http.StatusGatewayTimeout:
			maybe++
		}
		return resp.StatusCode, resp.Header, time.Since(begin)
	}
	for range 20 {
		if code, _, _ := review(); code != http.StatusAccepted {
			t.Fatalf("before the outage: %d", code)
		}
	}

	nats.Shutdown()
	nats.WaitForShutdown()
	var opened bool
	for i := 0; i < 50 && !opened; i++ {
		code, hdr, took := review()
		if code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
			t.Fatalf("broker down: status %d", code)
		}
		if took > 5*time.Second {
			t.Fatalf("broker down: a review took %s", took)
		}
		opened = code == http.StatusServiceUnavailable && hdr.Get("Retry-After") != ""
	}
	if !opened {
		t.Fatal("no 503 with Retry-After after 50 reviews against a dead broker")
	}
	// Open: 100 concurrent reviews are refused without waiting on the broker.
	begin := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := send(t, "POST", like, "", nil, nil)
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusServiceUnavailable] != 100 {
		t.Fatalf("with the breaker open: %v, want 100 × 503", codes)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("100 refused reviews took %s: they waited on the broker", took)
	}
	if v, ok := scrape(t, base).Value("scalelab_dependency_breaker_state", "dependency", "broker", "system", "albums"); v != 2 {
		t.Fatalf("breaker state metric %v (exported: %v), want 2 (open)", v, ok)
	}

	nats = proctest.StartNATS(t, port, storeDir)
	testsvc.WaitUntil(t, "the breaker to close after the broker returned", 30*time.Second, func() bool {
		code, _, _ := review()
		return code == http.StatusAccepted
	})
	for range 20 {
		if code, _, _ := review(); code != http.StatusAccepted {
			t.Fatalf("after the outage: %d", code)
		}
	}
	// A dislike as the sentinel (every other review is a like): the stream
	// is applied in order, so once it is counted every review before it is.
	if code, raw := do(t, "POST", base+"/api/v1/albums/"+id+"/reviews/dislike", "", nil, nil); code != http.StatusAccepted {
		t.Fatalf("sentinel review: %d %s", code, raw)
	}
	var c counts
	testsvc.WaitUntil(t, "accepted reviews applied", 20*time.Second, func() bool {
		do(t, "GET", base+"/api/v1/albums/"+id+"/reviews", "", nil, &c)
		return c.Dislikes >= 1
	})
	if c.Likes < int64(accepted) || c.Likes > int64(accepted+maybe) || c.Dislikes != 1 {
		t.Fatalf("%d likes counted; %d reviews accepted, %d timed out (maybe stored)", c.Likes, accepted, maybe)
	}
}

// The database goes away: albums already cached are still served; others
// get a quick 503 with Retry-After; reads recover when it is back.
func TestDatabaseDownServesFromCache(t *testing.T) {
	pg := testsvc.Postgres(t)
	target := strings.TrimPrefix(pg, "postgres://")
	target = target[strings.Index(target, "@")+1:]
	target = target[:strings.Index(target, "/")]
	proxy := proctest.StartProxy(t, target)
	dbURL := strings.Replace(pg, target, proxy.Addr(), 1)
	cfg := testConfig()
	cfg.DBTimeout = 500 * time.Millisecond
	cfg.Database.Timeout = time.Second
	base := start(t, host.Engines{DB: dbURL}, cfg)
	cached := createAlbum(t, base, "Cached", "One", 1999, pngImage(t, 2, 2)).AlbumID
	uncached := createAlbum(t, base, "Uncached", "Two", 1999, pngImage(t, 2, 2)).AlbumID
	var a albumJSON
	if code, raw := do(t, "GET", base+"/api/v1/albums/"+cached, "", nil, &a); code != 200 {
		t.Fatalf("warm the cache: %d %s", code, raw)
	}

	proxy.Cut()
	if code, raw := do(t, "GET", base+"/api/v1/albums/"+cached, "", nil, &a); code != 200 || a.Title != "One" {
		t.Fatalf("cached album with the database down: %d %s", code, raw)
	}
	begin := time.Now()
	resp := send(t, "GET", base+"/api/v1/albums/"+uncached, "", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("uncached album with the database down: %d", resp.StatusCode)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("the failing read took %s", took)
	}
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}

	proxy.Restore()
	testsvc.WaitUntil(t, "reads after the database returned", 20*time.Second, func() bool {
		resp := send(t, "GET", base+"/api/v1/albums/"+uncached, "", nil, nil)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// scrape reads the metrics of the process that serves base.
func scrape(t *testing.T, base string) promscrape.Metrics {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	m, err := promscrape.Scrape(context.Background(), http.DefaultClient, u.Scheme+"://"+u.Host+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The review consumer runs as its own process and is killed with SIGKILL
// three times while it works through a backlog — mid-batch, between a
// commit and its ack, wherever the signal lands — and restarted each time.
// Every accepted review is counted exactly once: nothing lost with the
// killed process, nothing counted twice when the broker redelivers what it
// had in hand.
func TestReviewConsumerKilledMidBatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		broker   func(testing.TB) string
		database func(testing.TB) string
	}{
		{"NATS+PostgreSQL", testsvc.NATS, testsvc.Postgres},
		{"RabbitMQ+MariaDB", testsvc.AMQP, testsvc.MySQL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := isolated(t, tc.broker(t), tc.database(t))
			engines := []string{"albums", "serve", "--db", e.DB, "--broker", e.Broker, "--namespace", e.Namespace}
			consumer := proctest.Start(t, proctest.FreeAddr(t), append(engines, "--data", t.TempDir(),
				"--review-batch", "50", "--review-wait", "20ms", "--broker-ack-wait", "2s")...)
			api := proctest.Start(t, proctest.FreeAddr(t), append(engines, "--data", t.TempDir(), "--consume-reviews=false")...)
			st := openTestStore(t, e.DB)

			var albums []string
			for i := range 4 {
				albums = append(albums, createAlbum(t, api.URL(), "Artist", "Killed "+strconv.Itoa(i), 2001, pngImage(t, 2, 2)).AlbumID)
			}
			// A backlog builds up while the consumer is down.
			consumer.Kill()
			const total = 8000
			want := postReviews(t, api.URL(), albums, total)

			consumer.Restart()
			counted := func() int64 {
				var n int64
				if err := st.db.QueryRow(`SELECT COALESCE(SUM(likes + dislikes), 0) FROM album_reviews`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			midStream := 0
			for kill := range 3 {
				before := counted()
				testsvc.WaitUntil(t, "the consumer to make progress", 30*time.Second, func() bool { return counted() >= before+200 })
				consumer.Kill()
				at := counted()
				if at < total {
					midStream++
				}
				t.Logf("kill %d: %d of %d reviews counted", kill+1, at, total)
				consumer.Restart()
			}
			if midStream == 0 {
				t.Fatal("every kill came after the backlog was done: the test tested nothing")
			}
			testsvc.WaitUntil(t, "every review counted", 60*time.Second, func() bool { return counted() >= total })
			// Wait until the broker has nothing left to redeliver: on NATS
			// its count of messages pending and awaiting an ack says so; AMQP
			// reports only the ready count (a killed member's unacked messages
			// return to ready when its connection drops), so a sentinel review
			// follows: the one live consumer gets the queue in order, and once
			// the sentinel is counted every delivery before it was written.
			backlog := backlogOf(t, e, ReviewTopic, "albums-reviews")
			testsvc.WaitUntil(t, "the broker to hold nothing for the group", 30*time.Second, func() bool {
				bl := backlog()
				return bl.Ready == 0 && bl.Unacked <= 0
			})
			if code, raw := do(t, "POST", api.URL()+"/api/v1/albums/"+albums[0]+"/reviews/like", "", nil, nil); code != 202 {
				t.Fatalf("sentinel review: %d %s", code, raw)
			}
			want[albums[0]] = counts{Likes: want[albums[0]].Likes + 1, Dislikes: want[albums[0]].Dislikes}
			testsvc.WaitUntil(t, "the sentinel counted", 30*time.Second, func() bool { return counted() >= total+1 })
			for _, id := range albums {
				var got counts
				do(t, "GET", consumer.URL()+"/api/v1/albums/"+id+"/reviews", "", nil, &got)
				if got != want[id] {
					t.Errorf("album %s: counted %+v, accepted %+v", id, got, want[id])
				}
			}
			if n, err := appliedCount(context.Background(), st); err != nil || n != total+1 {
				t.Errorf("%d applied review IDs, %v; want %d", n, err, total+1)
			}
			applied, _ := scrape(t, consumer.URL()).Value("scalelab_albums_reviews_applied_total", "outcome", "applied")
			t.Logf("the last consumer applied %.0f reviews", applied)
		})
	}
}

// backlogOf returns a function that asks the broker what the group has
// left to settle on topic.
func backlogOf(t *testing.T, e host.Engines, topic, group string) func() broker.Backlog {
	t.Helper()
	b, err := broker.Open(context.Background(), e.Broker, broker.Options{Namespace: e.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return func() broker.Backlog {
		bl, err := b.(broker.BacklogReader).Backlog(context.Background(), topic, group)
		if err != nil {
			t.Fatal(err)
		}
		return bl
	}
}

// postReviews sends n reviews from 16 clients, likes and dislikes spread
// over the albums, and returns what was accepted per album. Every one must
// be accepted.
func postReviews(t *testing.T, base string, albums []string, n int) map[string]counts {
	var mu sync.Mutex
	want := map[string]counts{}
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id, kind := albums[i%len(albums)], "like"
				if i%3 == 0 {
					kind = "dislike"
				}
				resp := send(t, "POST", base+"/api/v1/albums/"+id+"/reviews/"+kind, "", nil, nil)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("review %d: %d", i, resp.StatusCode)
					continue
				}
				mu.Lock()
				c := want[id]
				if kind == "like" {
					c.Likes++
				} else {
					c.Dislikes++
				}
				want[id] = c
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return want
}
