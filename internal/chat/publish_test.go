package chat

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
)

// heldBroker records what is published and acks only when the test says:
// the publisher's batching is a function of when acks come back, so the
// test controls exactly that. (The real brokers are in the integration
// and fault tests.)
type heldBroker struct {
	mu        sync.Mutex
	published [][]byte
	acks      []chan error
	failNext  error
	notify    chan struct{}
}

func newHeldBroker() *heldBroker { return &heldBroker{notify: make(chan struct{}, 1000)} }

func (b *heldBroker) PublishAsync(_ context.Context, _ string, data []byte) (broker.Pending, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.failNext; err != nil {
		b.failNext = nil
		return nil, err
	}
	b.published = append(b.published, data)
	ack := make(chan error, 1)
	b.acks = append(b.acks, ack)
	b.notify <- struct{}{}
	return heldPending(ack), nil
}

type heldPending chan error

func (p heldPending) Wait(ctx context.Context) error {
	select {
	case err := <-p:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ack settles the i-th publish.
func (b *heldBroker) ack(i int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.acks[i] <- err
}

func (b *heldBroker) envelopes() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]byte(nil), b.published...)
}

// waitPublished waits until n envelopes have been published.
func (b *heldBroker) waitPublished(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for len(b.envelopes()) < n {
		select {
		case <-b.notify:
		case <-deadline:
			t.Fatalf("%d envelopes published, want %d", len(b.envelopes()), n)
		}
	}
}

func entry(i int) []byte { return []byte("1\n{\"n\":" + strconv.Itoa(i) + "}") }

// entries lists the n values of an envelope, in order.
func entries(t *testing.T, env []byte) []int {
	t.Helper()
	var out []int
	for rest := env; len(rest) > 0; {
		_, body, next, err := NextWire(rest)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscanf(string(body), `{"n":%d}`, &n); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		out = append(out, n)
		rest = next
	}
	return out
}

func TestPublisherLoneMessageLeavesAtOnce(t *testing.T) {
	b := newHeldBroker()
	p := newPublisher(b, 256, 64<<10, 4, 5*time.Second, func(int) {})
	defer p.close()
	env, err := p.add(context.Background(), entry(1))
	if err != nil {
		t.Fatal(err)
	}
	b.waitPublished(t, 1) // with no ack outstanding, nothing waits for company
	if got := entries(t, b.envelopes()[0]); fmt.Sprint(got) != "[1]" {
		t.Fatalf("envelope holds %v", got)
	}
	b.ack(0, nil)
	if err := env.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// While every in-flight slot waits for its ack, messages gather in the
// open envelope up to the batch size; then senders wait; order is kept
// across envelopes; each message's Wait is its envelope's ack.
func TestPublisherEnvelopesGrowWhileAcksAreOutstanding(t *testing.T) {
	b := newHeldBroker()
	const flight, batch = 2, 10
	p := newPublisher(b, batch, 64<<10, flight, 5*time.Second, func(int) {})
	defer p.close()
	ctx := context.Background()

	var waits []*envelope
	add := func(i int) {
		env, err := p.add(ctx, entry(i))
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, env)
	}
	add(0)
	b.waitPublished(t, 1)
	add(1)
	b.waitPublished(t, 2) // the second slot was free
	for i := 2; i < 2+batch; i++ {
		add(i) // both slots busy: these gather in one envelope
	}
	blocked := make(chan *envelope)
	go func() {
		env, _ := p.add(ctx, entry(2+batch)) // the open envelope is full
		blocked <- env
	}()
	select {
	case <-blocked:
		t.Fatal("a sender got past a full envelope with no free slot")
	case <-time.After(50 * time.Millisecond):
	}
	if n := len(b.envelopes()); n != 2 {
		t.Fatalf("%d envelopes published with both slots busy", n)
	}

	b.ack(0, nil) // frees a slot: the full envelope leaves, the sender goes on
	b.waitPublished(t, 3)
	waits = append(waits, <-blocked)
	b.ack(1, errors.New("stream full"))
	b.ack(2, nil)
	b.waitPublished(t, 4)
	b.ack(3, nil)

	var all []int
	for _, env := range b.envelopes() {
		all = append(all, entries(t, env)...)
	}
	want := make([]int, 3+batch)
	for i := range want {
		want[i] = i
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("published order %v, want %v", all, want)
	}
	if got := len(entries(t, b.envelopes()[2])); got != batch {
		t.Fatalf("third envelope holds %d messages, want %d", got, batch)
	}
	for i, env := range waits {
		err := env.Wait(ctx)
		if (i == 1) != (err != nil) {
			t.Fatalf("message %d: Wait = %v (only message 1's envelope was refused)", i, err)
		}
	}
}

func TestPublisherFailuresReachEveryMessage(t *testing.T) {
	b := newHeldBroker()
	p := newPublisher(b, 256, 64<<10, 1, 100*time.Millisecond, func(int) {})
	ctx := context.Background()

	b.failNext = errors.New("connection closed")
	env, _ := p.add(ctx, entry(0))
	if err := env.Wait(ctx); err == nil {
		t.Fatal("a refused publish was acked")
	}

	env, _ = p.add(ctx, entry(1)) // published, never acked
	b.waitPublished(t, 1)
	if err := env.Wait(ctx); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unacked envelope: %v, want the publish timeout", err)
	}

	env, _ = p.add(ctx, entry(2)) // slot freed by the timeout
	b.waitPublished(t, 2)
	late, _ := p.add(ctx, entry(3)) // waits in the open envelope: the one slot is busy
	p.close()
	if err := late.Wait(ctx); !errors.Is(err, errPublisherClosed) {
		t.Fatalf("unpublished message at close: %v", err)
	}
	if _, err := p.add(ctx, entry(4)); !errors.Is(err, errPublisherClosed) {
		t.Fatalf("add after close: %v", err)
	}
	if err := env.Wait(ctx); err == nil {
		t.Fatal("close waited for an ack that never came, and called it success")
	}
}

// The byte bound closes an envelope before the count bound does; a message
// larger than the bound still travels, alone.
func TestPublisherByteBound(t *testing.T) {
	b := newHeldBroker()
	p := newPublisher(b, 256, 40, 1, 5*time.Second, func(int) {})
	defer p.close()
	ctx := context.Background()
	if _, err := p.add(ctx, entry(0)); err != nil {
		t.Fatal(err)
	}
	b.waitPublished(t, 1)
	for i := 1; i <= 4; i++ { // 10 bytes per entry with its newline: 4 fill 40
		if _, err := p.add(ctx, entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	go func() { _, _ = p.add(ctx, []byte("1\n{\"n\":5,\"pad\":\""+string(make([]byte, 100))+"\"}")) }()
	b.ack(0, nil)
	b.waitPublished(t, 2)
	if got := entries(t, b.envelopes()[1]); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("second envelope %v", got)
	}
	b.ack(1, nil)
	b.waitPublished(t, 3)
	if n := len(b.envelopes()[2]); n < 100 {
		t.Fatalf("the oversized message travelled in %d bytes", n)
	}
}
