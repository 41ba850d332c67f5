package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS is the JetStream engine, embedded or external.
type NATS struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	embedded *server.Server // nil for an external server
	lock     *os.File       // the embedded store's lock, held while open
	opts     Options
	streams  sync.Map // topic -> struct{}: streams known to exist
}

var _ Broker = (*NATS)(nil)

func openEmbeddedNATS(ctx context.Context, opts Options) (*NATS, error) {
	dir := filepath.Join(opts.DataDir, "nats")
	lock, err := lockStore(dir)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "scalelab-embedded",
		JetStream:  true,
		StoreDir:   dir,
		DontListen: true, // in-process connections only
		NoSigs:     true, // signals belong to main
		NoLog:      true,
	})
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("broker: embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		lock.Close()
		return nil, errors.New("broker: embedded nats did not become ready in 10s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("scalelab"))
	if err != nil {
		srv.Shutdown()
		lock.Close()
		return nil, fmt.Errorf("broker: connect embedded nats: %w", err)
	}
	b, err := newNATS(nc, opts)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		lock.Close()
		return nil, err
	}
	b.embedded, b.lock = srv, lock
	return b, nil
}

// ErrStoreInUse is an embedded broker's directory held by another process.
var ErrStoreInUse = errors.New("broker: the embedded broker's directory is in use")

// lockStore takes dir for this process. Two processes each running an
// embedded broker on one directory would each have their own server
// over the same files: messages one publishes the other never sees, with
// no error anywhere. So the second is refused at start, and told what to
// do instead. The lock (flock) goes with the process, however it ends.
func lockStore(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("broker: embedded nats: %w", err)
	}
	path := filepath.Join(dir, "scalelab.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("broker: embedded nats: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by process %s; processes that work together need one broker: "+
			"run a NATS server (or RabbitMQ) and give every process --broker nats://HOST:4222, or give this process its own --data",
			ErrStoreInUse, dir, strings.TrimSpace(string(holder)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

func openNATS(_ context.Context, url string, opts Options) (*NATS, error) {
	nc, err := nats.Connect(url,
		nats.Name("scalelab"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.Timeout(5*time.Second),
		// No reconnect buffer: a publish while the connection is down fails
		// at once instead of being held and sent after the caller was told
		// it failed (a "503, not recorded" that is recorded later after all).
		nats.ReconnectBufSize(-1),
	)
	if err != nil {
		return nil, fmt.Errorf("broker: connect nats %s: %w", url, err)
	}
	b, err := newNATS(nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

func newNATS(nc *nats.Conn, opts Options) (*NATS, error) {
	js, err := jetstream.New(nc,
		// Enough publishes in flight for many pipelining senders; a lost
		// ack fails its future after the timeout instead of hanging it.
		jetstream.WithPublishAsyncMaxPending(16384),
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("broker: jetstream: %w", err)
	}
	return &NATS{nc: nc, js: js, opts: opts}, nil
}

func (b *NATS) stream(topic string) string  { return b.opts.Namespace + "_" + topic }
func (b *NATS) subject(topic string) string { return b.opts.Namespace + "." + topic }

// ensureStream creates the topic's stream once per process.
func (b *NATS) ensureStream(ctx context.Context, topic string) error {
	if _, ok := b.streams.Load(topic); ok {
		return nil
	}
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      b.stream(topic),
		Subjects:  []string{b.subject(topic)},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy,
		MaxAge:    24 * time.Hour,
		MaxBytes:  1 << 30,
		Discard:   jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("broker: create stream %s: %w", b.stream(topic), err)
	}
	b.streams.Store(topic, struct{}{})
	return nil
}

// Publish implements Broker: it returns after the JetStream ack.
func (b *NATS) Publish(ctx context.Context, topic string, data []byte) error {
	if err := checkNames(topic); err != nil {
		return err
	}
	if err := b.ensureStream(ctx, topic); err != nil {
		return err
	}
	if _, err := b.js.Publish(ctx, b.subject(topic), data); err != nil {
		return fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return nil
}

// PublishAsync implements Broker with a JetStream async publish: every
// message goes out on the one connection in call order.
func (b *NATS) PublishAsync(ctx context.Context, topic string, data []byte) (Pending, error) {
	if err := checkNames(topic); err != nil {
		return nil, err
	}
	if err := b.ensureStream(ctx, topic); err != nil {
		return nil, err
	}
	f, err := b.js.PublishAsync(b.subject(topic), data)
	if err != nil {
		return nil, fmt.Errorf("broker: publish %s: %w", topic, err)
	}
	return natsPending{f: f, topic: topic}, nil
}

type natsPending struct {
	f     jetstream.PubAckFuture
	topic string
}

func (p natsPending) Wait(ctx context.Context) error {
	select {
	case <-p.f.Ok():
		return nil
	case err := <-p.f.Err():
		return fmt.Errorf("broker: publish %s: %w", p.topic, err)
	case <-ctx.Done():
		return fmt.Errorf("broker: publish %s: waiting for ack: %w", p.topic, ctx.Err())
	}
}

// Subscribe implements Broker with an ordered consumer: ephemeral, no acks,
// starting at new messages, and recreated from the last sequence it saw
// when it detects a gap or loses its connection.
func (b *NATS) Subscribe(ctx context.Context, topic string, h func(data []byte)) (Consumer, error) {
	if err := checkNames(topic); err != nil {
		return nil, err
	}
	if err := b.ensureStream(ctx, topic); err != nil {
		return nil, err
	}
	cons, err := b.js.OrderedConsumer(ctx, b.stream(topic), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: subscribe %s: %w", topic, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { h(msg.Data()) }, jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, fmt.Errorf("broker: subscribe %s: %w", topic, err)
	}
	return &natsConsumer{cc: cc, cancel: func() {}}, nil
}

// group creates (or finds) the durable pull consumer of a group.
func (b *NATS) group(ctx context.Context, topic, group string, ackWait time.Duration) (jetstream.Consumer, error) {
	if err := checkNames(topic, group); err != nil {
		return nil, err
	}
	if err := b.ensureStream(ctx, topic); err != nil {
		return nil, err
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.stream(topic), jetstream.ConsumerConfig{
		Durable:       group,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cmp.Or(ackWait, b.opts.AckWait),
		MaxAckPending: b.opts.Prefetch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: create consumer %s/%s: %w", topic, group, err)
	}
	return cons, nil
}

// Declare implements Broker.
func (b *NATS) Declare(ctx context.Context, topic, group string, opts ...ConsumeOption) error {
	_, err := b.group(ctx, topic, group, memberOptions(opts).ackWait)
	return err
}

// Consume implements Broker with a durable pull consumer per group.
func (b *NATS) Consume(ctx context.Context, topic, group string, h Handler, opts ...ConsumeOption) (Consumer, error) {
	o := memberOptions(opts)
	cons, err := b.group(ctx, topic, group, o.ackWait)
	if err != nil {
		return nil, err
	}
	message := func(cctx context.Context, msg jetstream.Msg, settled func()) *Message {
		meta, _ := msg.Metadata()
		return &Message{
			Topic:       topic,
			Data:        msg.Data(),
			Redelivered: meta != nil && meta.NumDelivered > 1,
			ack:         func() error { defer settled(); return msg.Ack() },
			nak:         func() error { defer settled(); return msg.Nak() },
			inProgress:  msg.InProgress,
		}
	}
	if o.prefetch > 0 {
		return b.consumeCounted(cons, o.prefetch, h, message), nil
	}
	cctx, cancel := context.WithCancel(context.Background())
	cc, err := cons.Consume(func(msg jetstream.Msg) { h(cctx, message(cctx, msg, func() {})) }, jetstream.PullMaxMessages(b.opts.Prefetch))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("broker: consume %s/%s: %w", topic, group, err)
	}
	return &natsConsumer{cc: cc, cancel: cancel}, nil
}

// consumeCounted pulls one message at a time, and only while fewer than
// n are unsettled: JetStream's Consume pulls ahead in batches, which a
// member that must hold at most n cannot allow.
func (b *NATS) consumeCounted(cons jetstream.Consumer, n int, h Handler,
	message func(context.Context, jetstream.Msg, func()) *Message) Consumer {
	cctx, cancel := context.WithCancel(context.Background())
	credits := make(chan struct{}, n)
	for range n {
		credits <- struct{}{}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-cctx.Done():
				return
			case <-credits:
			}
			for {
				msg, err := cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
				if cctx.Err() != nil {
					if msg != nil {
						_ = msg.Nak()
					}
					return
				}
				if err == nil {
					h(cctx, message(cctx, msg, sync.OnceFunc(func() { credits <- struct{}{} })))
					break
				}
				if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
					select { // the connection is down or the consumer is gone: retry gently
					case <-cctx.Done():
					case <-time.After(200 * time.Millisecond):
					}
				}
			}
		}
	}()
	return &countedConsumer{cancel: cancel, done: done}
}

type countedConsumer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *countedConsumer) Stop() {
	c.cancel()
	<-c.done
}

type natsConsumer struct {
	cc     jetstream.ConsumeContext
	cancel context.CancelFunc
}

func (c *natsConsumer) Stop() {
	c.cc.Stop()
	<-c.cc.Closed()
	c.cancel()
}

// Ping implements Broker.
func (b *NATS) Ping(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("broker: nats is %s", b.nc.Status())
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("broker: jetstream: %w", err)
	}
	return nil
}

// Close drains the connection (in-flight publishes and acks complete) and
// stops the embedded server, which flushes its streams to disk.
func (b *NATS) Close() error {
	err := b.nc.Drain()
	deadline := time.Now().Add(5 * time.Second)
	for !b.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.nc.Close()
	if b.embedded != nil {
		b.embedded.Shutdown()
		b.embedded.WaitForShutdown()
	}
	if b.lock != nil {
		b.lock.Close() // releases the store for the next process
	}
	return err
}
