package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

type engine struct {
	name string
	url  func(t *testing.T) string
}

var engines = []engine{
	{"Embedded", func(t *testing.T) string { return "" }},
	{"NATS", func(t *testing.T) string { return testsvc.NATS(t) }},
	{"RabbitMQ", func(t *testing.T) string { return testsvc.AMQP(t) }},
}

func open(t *testing.T, url, ns, dataDir string) broker.Broker {
	t.Helper()
	b, err := broker.Open(context.Background(), url, broker.Options{
		Namespace: ns, DataDir: dataDir, AckWait: time.Second, Prefetch: 64, GroupExpiry: time.Minute,
	})
	testsvc.CleanupBroker(t, url, ns)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// collector records deliveries by payload.
type collector struct {
	mu    sync.Mutex
	got   map[string]int
	redel int
	ch    chan struct{}
}

func newCollector() *collector {
	return &collector{got: map[string]int{}, ch: make(chan struct{}, 10000)}
}

func (c *collector) handle(ack bool) broker.Handler {
	return func(_ context.Context, m *broker.Message) {
		c.mu.Lock()
		c.got[string(m.Data)]++
		if m.Redelivered {
			c.redel++
		}
		c.mu.Unlock()
		if ack {
			_ = m.Ack()
		}
		c.ch <- struct{}{}
	}
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// orderLog records what a subscriber receives, in order.
type orderLog struct {
	mu  sync.Mutex
	got []string
}

func (l *orderLog) add(data []byte) {
	l.mu.Lock()
	l.got = append(l.got, string(data))
	l.mu.Unlock()
}

func (l *orderLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

func (l *orderLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

func TestContract(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			url := e.url(t)
			ns := testsvc.Name("brokertest")
			ctx := context.Background()
			b := open(t, url, ns, t.TempDir())
			defer b.Close()
			if err := b.Ping(ctx); err != nil {
				t.Fatal(err)
			}

			t.Run("groups", func(t *testing.T) {
				// Two members of group A share the work; group B gets every message too.
				a1, a2, gb := newCollector(), newCollector(), newCollector()
				for _, c := range []struct {
					group string
					col   *collector
				}{{"a", a1}, {"a", a2}, {"b", gb}} {
					cons, err := b.Consume(ctx, "orders", c.group, c.col.handle(true))
					if err != nil {
						t.Fatal(err)
					}
					defer cons.Stop()
				}
				const n = 200
				for i := 0; i < n; i++ {
					if err := b.Publish(ctx, "orders", []byte(fmt.Sprint(i))); err != nil {
						t.Fatal(err)
					}
				}
				testsvc.WaitUntil(t, "group b to get all", 15*time.Second, func() bool { return gb.distinct() == n })
				testsvc.WaitUntil(t, "group a to get all", 15*time.Second, func() bool {
					a1.mu.Lock()
					defer a1.mu.Unlock()
					a2.mu.Lock()
					defer a2.mu.Unlock()
					seen := map[string]bool{}
					for k := range a1.got {
						seen[k] = true
					}
					for k := range a2.got {
						seen[k] = true
					}
					return len(seen) == n
				})
			})

			t.Run("nak redelivers", func(t *testing.T) {
				var mu sync.Mutex
				attempts := 0
				done := make(chan bool, 1)
				cons, err := b.Consume(ctx, "retry", "g", func(_ context.Context, m *broker.Message) {
					mu.Lock()
					attempts++
					first := attempts == 1
					mu.Unlock()
					if first {
						if m.Redelivered {
							t.Error("first delivery marked redelivered")
						}
						_ = m.Nak()
						return
					}
					_ = m.Ack()
					select {
					case done <- m.Redelivered:
					default:
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				defer cons.Stop()
				if err := b.Publish(ctx, "retry", []byte("x")); err != nil {
					t.Fatal(err)
				}
				select {
				case redelivered := <-done:
					if !redelivered {
						t.Error("second delivery not marked redelivered")
					}
				case <-time.After(15 * time.Second):
					t.Fatal("naked message was not redelivered")
				}
			})

			t.Run("unacked survive a stopped consumer", func(t *testing.T) {
				first := newCollector()
				cons, err := b.Consume(ctx, "crash", "g", first.handle(false)) // never acks
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 10; i++ {
					if err := b.Publish(ctx, "crash", []byte(fmt.Sprint(i))); err != nil {
						t.Fatal(err)
					}
				}
				testsvc.WaitUntil(t, "first consumer to receive", 15*time.Second, func() bool { return first.distinct() == 10 })
				cons.Stop() // "crash" with ten unsettled messages
				second := newCollector()
				cons2, err := b.Consume(ctx, "crash", "g", second.handle(true))
				if err != nil {
					t.Fatal(err)
				}
				defer cons2.Stop()
				testsvc.WaitUntil(t, "redelivery to the second consumer", 15*time.Second, func() bool { return second.distinct() == 10 })
			})

			t.Run("declared work queue, one task per member", func(t *testing.T) {
				// The group exists before any member: what is published now is kept.
				if err := b.Declare(ctx, "tasks", "w"); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 4; i++ {
					if err := b.Publish(ctx, "tasks", []byte(fmt.Sprint(i))); err != nil {
						t.Fatal(err)
					}
				}
				type member struct {
					got  chan *broker.Message
					held atomic.Int32
					most atomic.Int32
				}
				join := func() *member {
					m := &member{got: make(chan *broker.Message, 8)}
					cons, err := b.Consume(ctx, "tasks", "w", func(_ context.Context, msg *broker.Message) {
						if h := m.held.Add(1); h > m.most.Load() {
							m.most.Store(h)
						}
						m.got <- msg
					}, broker.MemberPrefetch(1))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(cons.Stop)
					return m
				}
				settle := func(m *member, msg *broker.Message) {
					m.held.Add(-1)
					if err := msg.Ack(); err != nil {
						t.Error(err)
					}
				}
				next := func(m *member, who string) *broker.Message {
					select {
					case msg := <-m.got:
						return msg
					case <-time.After(15 * time.Second):
						t.Fatalf("%s got no task", who)
						return nil
					}
				}
				m1 := join()
				first := next(m1, "first member")
				m2 := join() // joins while the first holds a task: it must get one of the rest
				second := next(m2, "second member")
				settle(m1, first)
				third := next(m1, "first member, after settling")
				settle(m2, second)
				fourth := next(m2, "second member, after settling") // the first still holds the third
				settle(m1, third)
				settle(m2, fourth)
				if a, b := m1.most.Load(), m2.most.Load(); a != 1 || b != 1 {
					t.Fatalf("members held up to %d and %d unsettled tasks, want 1", a, b)
				}
			})

			t.Run("a group's own ack wait", func(t *testing.T) {
				if e.name == "RabbitMQ" {
					t.Skip("RabbitMQ redelivers when the channel closes; GroupAckWait is NATS's")
				}
				got := make(chan time.Time, 8)
				cons, err := b.Consume(ctx, "quick", "g", func(_ context.Context, m *broker.Message) { got <- time.Now() }, // never settles
					broker.GroupAckWait(200*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				defer cons.Stop()
				if err := b.Publish(ctx, "quick", []byte("x")); err != nil {
					t.Fatal(err)
				}
				first := <-got
				select {
				case again := <-got:
					if d := again.Sub(first); d > 800*time.Millisecond {
						t.Fatalf("redelivered after %v; the group's ack wait is 200ms (the broker's 1s)", d)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("never redelivered")
				}
			})

			t.Run("backlog", func(t *testing.T) {
				br := b.(broker.BacklogReader)
				if _, err := br.Backlog(ctx, "depth", "nobody"); !errors.Is(err, broker.ErrNoGroup) {
					t.Fatalf("backlog of a group that never consumed: %v", err)
				}
				// The group exists once it consumed; then it stops and five wait.
				cons, err := b.Consume(ctx, "depth", "g", func(context.Context, *broker.Message) {})
				if err != nil {
					t.Fatal(err)
				}
				cons.Stop()
				for i := 0; i < 5; i++ {
					if err := b.Publish(ctx, "depth", []byte(fmt.Sprint(i))); err != nil {
						t.Fatal(err)
					}
				}
				backlog := func() broker.Backlog {
					bl, err := br.Backlog(ctx, "depth", "g")
					if err != nil {
						t.Fatal(err)
					}
					return bl
				}
				testsvc.WaitUntil(t, "five ready", 15*time.Second, func() bool { return backlog().Ready == 5 })
				// Three delivered and held unacked, then all acked: nothing left.
				held := make(chan *broker.Message, 5)
				cons, err = b.Consume(ctx, "depth", "g", func(_ context.Context, m *broker.Message) { held <- m })
				if err != nil {
					t.Fatal(err)
				}
				defer cons.Stop()
				var got []*broker.Message
				for len(got) < 5 {
					select {
					case m := <-held:
						got = append(got, m)
					case <-time.After(15 * time.Second):
						t.Fatalf("%d of 5 delivered", len(got))
					}
				}
				bl := backlog()
				if bl.Ready != 0 || (bl.Unacked != 5 && bl.Unacked != -1) {
					t.Fatalf("five delivered, none acked: backlog %+v", bl)
				}
				for _, m := range got {
					_ = m.Ack()
				}
				testsvc.WaitUntil(t, "an empty backlog", 15*time.Second, func() bool { bl := backlog(); return bl.Ready == 0 && bl.Unacked <= 0 })
			})

			t.Run("subscribers see one order", func(t *testing.T) {
				testsvc.CleanupStreams(t, url, ns, "room")
				// Two subscribers, two pipelining publishers: both subscribers
				// see every message in the same order, and each publisher's
				// messages in the order it sent them.
				subs := [2]*orderLog{{}, {}}
				for _, l := range subs {
					cons, err := b.Subscribe(ctx, "room", l.add)
					if err != nil {
						t.Fatal(err)
					}
					defer cons.Stop()
				}
				const perPublisher = 300
				var wg sync.WaitGroup
				for p := 0; p < 2; p++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var pending []broker.Pending
						for i := 0; i < perPublisher; i++ {
							pd, err := b.PublishAsync(ctx, "room", []byte(fmt.Sprintf("%d-%04d", p, i)))
							if err != nil {
								t.Error(err)
								return
							}
							pending = append(pending, pd)
						}
						for _, pd := range pending {
							if err := pd.Wait(ctx); err != nil {
								t.Error(err)
							}
						}
					}()
				}
				wg.Wait()
				for i, l := range subs {
					testsvc.WaitUntil(t, fmt.Sprintf("subscriber %d to get all", i), 15*time.Second, func() bool { return l.len() == 2*perPublisher })
				}
				a, c := subs[0].snapshot(), subs[1].snapshot()
				for i := range a {
					if a[i] != c[i] {
						t.Fatalf("subscribers disagree at %d: %s vs %s", i, a[i], c[i])
					}
				}
				last := map[byte]string{}
				for _, m := range a {
					if prev, ok := last[m[0]]; ok && m <= prev {
						t.Fatalf("publisher %c reordered: %s after %s", m[0], m, prev)
					}
					last[m[0]] = m
				}
			})

			t.Run("bad names", func(t *testing.T) {
				if err := b.Publish(ctx, "no.dots", nil); err == nil {
					t.Fatal("topic with a dot accepted")
				}
				if _, err := b.Consume(ctx, "ok", "bad group", func(context.Context, *broker.Message) {}); err == nil {
					t.Fatal("group with a space accepted")
				}
			})
		})
	}
}

// The embedded broker keeps unconsumed messages across a restart.
func TestEmbeddedDurableAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b := open(t, "", "durable", dir)
	c := newCollector()
	cons, err := b.Consume(ctx, "t", "g", c.handle(true)) // creates the group
	if err != nil {
		t.Fatal(err)
	}
	cons.Stop()
	for i := 0; i < 50; i++ {
		if err := b.Publish(ctx, "t", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2 := open(t, "", "durable", dir)
	defer b2.Close()
	c2 := newCollector()
	cons2, err := b2.Consume(ctx, "t", "g", c2.handle(true))
	if err != nil {
		t.Fatal(err)
	}
	defer cons2.Stop()
	testsvc.WaitUntil(t, "messages after restart", 15*time.Second, func() bool { return c2.distinct() == 50 })
}

// Two processes on one embedded broker directory would each run their own
// server over the same files and never see each other's messages: the
// second is refused with a message that says what to do, until the first
// lets go.
func TestEmbeddedStoreIsExclusive(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := broker.Open(ctx, "", broker.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = broker.Open(ctx, "embedded://", broker.Options{DataDir: dir})
	if !errors.Is(err, broker.ErrStoreInUse) || !strings.Contains(err.Error(), "--broker nats://") {
		t.Fatalf("a second embedded broker on one directory: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := broker.Open(ctx, "", broker.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
