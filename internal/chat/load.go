package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/coder/websocket"

	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/resilience"
)

// LoadPlan is a chat load run: Connections clients spread round robin over
// Servers and Rooms, sending Messages in total after a Warmup, each with at
// most Window messages awaiting their reply. Rate > 0 paces the sends (open
// model: latency counts from the intended send time).
type LoadPlan struct {
	Servers     []string // ws://host:port base URLs (…/chat/{room} is appended)
	Connections int
	Rooms       int
	Messages    int
	Warmup      int
	Window      int
	Rate        float64 // messages/s over all connections; 0: as fast as replies allow
	Deadline    time.Duration
	AllowRemote bool
	Seed        uint64
	// OnMeasure, if set, is called when the measured phase starts (after
	// the warm-up has been answered), e.g. to start counting stored rows.
	OnMeasure func(start time.Time)
	// OnAnswered, if set, is called when every message of the measured
	// phase has its reply (before waiting for the room messages).
	OnAnswered func()
}

// LoadResult is what a run measured (the measured phase only).
type LoadResult struct {
	Sent, Acked, Errors int64
	Received, Expected  int64          // room messages received by our connections, and how many should have been
	Elapsed             time.Duration  // start → last reply
	Delivered           time.Duration  // start → last room message received
	Ack, Receive        *hdr.Histogram // µs
	AckedIDs            []int64
}

// AckedPerSecond is the measured phase's acknowledged throughput.
func (r *LoadResult) AckedPerSecond() float64 { return float64(r.Acked) / r.Elapsed.Seconds() }

// DeliveredPerSecond is messages per second until the last room message
// reached its last receiver.
func (r *LoadResult) DeliveredPerSecond() float64 {
	if r.Delivered <= 0 {
		return 0
	}
	return float64(r.Acked) / max(r.Delivered, r.Elapsed).Seconds()
}

func (p *LoadPlan) check() error {
	if len(p.Servers) == 0 || p.Connections < 1 || p.Rooms < 1 || p.Messages < 1 || p.Window < 1 || p.Warmup < 0 || p.Rate < 0 {
		return errors.New("need servers, and connections, rooms, messages, window ≥ 1")
	}
	for _, s := range p.Servers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return fmt.Errorf("bad server URL %q: want ws://host:port", s)
		}
		if err := loadgen.CheckLoopback(u.Hostname(), p.AllowRemote); err != nil {
			return err
		}
	}
	if p.Deadline <= 0 {
		p.Deadline = 10 * time.Minute
	}
	return nil
}

// loadConn is one client connection of a run.
type loadConn struct {
	id, room int
	user     string
	ws       *websocket.Conn
	tcp      *corkedConn // under ws: the sender writes what is ready in one write
	// sendTimes holds the (intended) send time of each message awaiting its
	// reply: replies come in order, so the oldest one is answered next.
	mu        sync.Mutex
	sendTimes []time.Time
	inflight  chan struct{} // window slots
	ack, recv *hdr.Histogram
	acked     []int64
	lastRecv  time.Time
	seq       int64 // numbers this connection's texts across phases (sender goroutine only)
	sent      atomic.Int64
	ackedN    atomic.Int64
	errors    atomic.Int64
	received  atomic.Int64
	measuring atomic.Bool
	measureAt atomic.Int64 // unix ns: room messages sent before this are not timed
}

// RunLoad executes the plan. It ends by itself: after the messages, or at
// the deadline, or when ctx ends.
func RunLoad(ctx context.Context, p LoadPlan, progress io.Writer) (*LoadResult, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.Deadline)
	defer cancel()
	conns := make([]*loadConn, p.Connections)
	roomSize := make([]int64, p.Rooms+1)
	for i := range conns {
		c := &loadConn{id: i, room: i%p.Rooms + 1, user: strconv.Itoa(i%MaxUserID + 1),
			inflight: make(chan struct{}, p.Window), ack: loadgen.NewHistogram(), recv: loadgen.NewHistogram()}
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		ws, _, err := websocket.Dial(dctx, p.Servers[i%len(p.Servers)]+"/chat/"+strconv.Itoa(c.room),
			&websocket.DialOptions{HTTPClient: c.corkingClient()})
		dcancel()
		if err != nil {
			for _, o := range conns[:i] {
				_ = o.ws.CloseNow()
			}
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		ws.SetReadLimit(1 << 20)
		c.ws = ws
		if c.tcp == nil {
			_ = ws.CloseNow()
			return nil, fmt.Errorf("connection %d: the WebSocket does not run over the dialled TCP connection", i)
		}
		conns[i] = c
		roomSize[c.room]++
	}
	defer func() {
		for _, c := range conns {
			_ = c.ws.CloseNow()
		}
	}()
	var readers sync.WaitGroup
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			c.read(ctx)
		}()
	}

	// Warm-up: connections, JIT-free Go still has pools, caches, TCP windows
	// and database pages to fill. Not measured.
	if p.Warmup > 0 {
		fmt.Fprintf(progress, "warm-up: %d messages\n", p.Warmup)
		if err := sendAll(ctx, conns, p, p.Warmup, 0, nil); err != nil {
			return nil, err
		}
		waitReplies(ctx, conns)
	}
	res := &LoadResult{Ack: loadgen.NewHistogram(), Receive: loadgen.NewHistogram()}
	for _, c := range conns {
		c.ack.Reset()
		c.recv.Reset()
		c.mu.Lock()
		c.acked = c.acked[:0]
		c.mu.Unlock()
		c.sent.Store(0)
		c.ackedN.Store(0)
		c.errors.Store(0)
		c.received.Store(0)
	}
	start := time.Now()
	if p.OnMeasure != nil {
		p.OnMeasure(start)
	}
	for _, c := range conns {
		c.measureAt.Store(start.UnixNano())
		c.measuring.Store(true)
	}
	fmt.Fprintf(progress, "measuring: %d messages over %d connections, %d rooms, %d servers\n",
		p.Messages, p.Connections, p.Rooms, len(p.Servers))
	stopProgress := reportProgress(ctx, conns, progress)
	if err := sendAll(ctx, conns, p, p.Messages, p.Rate, &start); err != nil {
		stopProgress()
		return nil, err
	}
	waitReplies(ctx, conns)
	res.Elapsed = time.Since(start)
	if p.OnAnswered != nil {
		p.OnAnswered()
	}
	for _, c := range conns {
		res.Sent += c.sent.Load()
		res.Expected += c.ackedN.Load() * roomSize[c.room] // rejected messages are not broadcast
	}
	// Room messages still on their way to us: wait for them (fan-out may
	// lag behind the acks; that lag is part of what is measured).
	deadline := time.Now().Add(60 * time.Second)
	for received(conns) < res.Expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	stopProgress()
	for _, c := range conns {
		_ = c.ws.Close(websocket.StatusNormalClosure, "load run over")
	}
	readers.Wait()
	for _, c := range conns {
		res.Acked += c.ackedN.Load()
		res.Errors += c.errors.Load()
		res.Received += c.received.Load()
		res.Ack.Merge(c.ack)
		res.Receive.Merge(c.recv)
		res.AckedIDs = append(res.AckedIDs, c.acked...)
		if d := c.lastRecv.Sub(start); d > res.Delivered {
			res.Delivered = d
		}
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("run cut short: %w", ctx.Err())
	}
	return res, nil
}

func received(conns []*loadConn) int64 {
	var n int64
	for _, c := range conns {
		n += c.received.Load()
	}
	return n
}

// sendAll sends total messages, split evenly over the connections. Paced
// (rate > 0), arrival k of loadgen's constant-rate schedule goes to
// connection k mod N, so the connections' sends interleave evenly and the
// whole run follows the same schedule as `scalelab load http`.
func sendAll(ctx context.Context, conns []*loadConn, p LoadPlan, total int, rate float64, start *time.Time) error {
	var sched *loadgen.Schedule
	if rate > 0 && start != nil {
		s, err := loadgen.ConstantRate(rate, time.Duration(float64(total)/rate*float64(time.Second))+time.Second)
		if err != nil {
			return err
		}
		sched = &s
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(conns))
	for i, c := range conns {
		n := total / len(conns)
		if i < total%len(conns) {
			n++
		}
		var due func(j int) time.Time // nil: closed loop
		if sched != nil {
			due = func(j int) time.Time {
				at, _ := sched.At(int64(i + j*len(conns)))
				return start.Add(at)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(p.Seed, uint64(c.id)))
			if err := c.send(ctx, n, due, rng); err != nil {
				errc <- fmt.Errorf("connection %d: %w", c.id, err)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

var loadWords = []string{"hello", "scalable", "chat", "message", "room", "broker", "fan-out", "latency", "queue", "persist"}

// corkingClient dials through a corkedConn and keeps it as c.tcp, so
// that the sender can write the frames it has ready with one system call
// (see cork.go): the load generator shares the machine with what it
// measures, and one write per frame was 37 % of its CPU.
func (c *loadConn) corkingClient() *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c.tcp = &corkedConn{Conn: nc, writeTimeout: 10 * time.Second}
			return c.tcp, nil
		},
	}}
}

// send sends n messages, each when a window slot is free (and, paced by
// due, when it is due: latency then counts from the intended send time).
// Messages that are ready at once — slots free, already due — leave in one
// write.
func (c *loadConn) send(ctx context.Context, n int, due func(j int) time.Time, rng *rand.Rand) error {
	buf := make([]byte, 0, 512)
	paced := due != nil
	stamp := func(j int) time.Time {
		if paced {
			return due(j)
		}
		return time.Now()
	}
	for i := 0; i < n; {
		select {
		case c.inflight <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if paced && !resilience.Sleep(ctx, time.Until(due(i))) {
			return ctx.Err()
		}
		c.tcp.cork()
		err := c.sendOne(ctx, buf, stamp(i), rng)
		for i++; err == nil && i < n && c.readyNow(i, due); i++ {
			err = c.sendOne(ctx, buf, stamp(i), rng)
		}
		if uerr := c.tcp.uncork(); err == nil {
			err = uerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readyNow reports whether another message may join the batch being
// written: room in it, due already (when paced), and a window slot free
// without waiting — which it then takes.
func (c *loadConn) readyNow(j int, due func(j int) time.Time) bool {
	if c.tcp.heldBytes() >= maxHeld || (due != nil && time.Until(due(j)) > 0) {
		return false
	}
	select {
	case c.inflight <- struct{}{}:
		return true
	default:
		return false
	}
}

// sendOne writes the next message (its window slot taken), stamped at.
func (c *loadConn) sendOne(ctx context.Context, buf []byte, at time.Time, rng *rand.Rand) error {
	buf = c.appendMessage(buf[:0], at, rng)
	c.mu.Lock()
	c.sendTimes = append(c.sendTimes, at)
	c.mu.Unlock()
	c.sent.Add(1)
	return c.ws.Write(ctx, websocket.MessageText, buf)
}

// appendMessage appends the connection's next message, stamped at.
func (c *loadConn) appendMessage(buf []byte, at time.Time, rng *rand.Rand) []byte {
	buf = append(buf, `{"userId":"`...)
	buf = append(buf, c.user...)
	buf = append(buf, `","username":"user`...)
	buf = append(buf, c.user...)
	buf = append(buf, `","message":"c`...)
	buf = strconv.AppendInt(buf, int64(c.id), 10)
	buf = append(buf, '-')
	buf = strconv.AppendInt(buf, c.seq, 10)
	c.seq++
	for w := 0; w < 3+rng.IntN(8); w++ {
		buf = append(buf, ' ')
		buf = append(buf, loadWords[rng.IntN(len(loadWords))]...)
	}
	buf = append(buf, `","timestamp":"`...)
	buf = at.UTC().AppendFormat(buf, time.RFC3339Nano)
	return append(buf, `","messageType":"TEXT"}`...)
}

// waitReplies waits until every connection has its replies.
func waitReplies(ctx context.Context, conns []*loadConn) {
	for _, c := range conns {
		for len(c.inflight) > 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

var replyPrefix = []byte(`{"status":`)

// read takes replies (timing send → ack) and room messages (timing the
// client timestamp → now), with the same fuzz-checked parsers the server
// and the persister use.
func (c *loadConn) read(ctx context.Context) {
	var frame bytes.Buffer
	for {
		_, data, err := readMessage(ctx, c.ws, &frame)
		if err != nil {
			return
		}
		now := time.Now()
		// Servers write a reply's status first; a room message never has one.
		if bytes.HasPrefix(data, replyPrefix) {
			reply, ok := parseReply(data)
			if !ok {
				reply = Reply{Status: "ERROR"} // a reply that does not parse still answers its message
			}
			c.mu.Lock()
			var sentAt time.Time
			if len(c.sendTimes) > 0 {
				sentAt = c.sendTimes[0]
				c.sendTimes = c.sendTimes[1:]
			}
			acked := reply.Status == "OK"
			if acked {
				id, _ := strconv.ParseInt(reply.MessageID, 10, 64)
				c.acked = append(c.acked, id)
			}
			if c.measuring.Load() && !sentAt.IsZero() {
				_ = c.ack.RecordValue(max(1, now.Sub(sentAt).Microseconds()))
			}
			c.mu.Unlock()
			if acked {
				c.ackedN.Add(1)
			} else {
				c.errors.Add(1)
			}
			select {
			case <-c.inflight:
			default:
			}
			continue
		}
		// A room message. Only those sent in the measured phase count (a
		// warm-up message may still be on its way).
		if !c.measuring.Load() {
			continue
		}
		m, ok := parseOutboundFast(data)
		if !ok && json.Unmarshal(data, &m) != nil {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, m.Timestamp); err == nil && t.UnixNano() >= c.measureAt.Load() {
			c.mu.Lock()
			_ = c.recv.RecordValue(max(1, now.Sub(t).Microseconds()))
			c.lastRecv = now
			c.mu.Unlock()
			c.received.Add(1)
		}
	}
}

// reportProgress prints acked messages per second once a second.
func reportProgress(ctx context.Context, conns []*loadConn, w io.Writer) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for sec := 1; ; sec++ {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var acked, errs int64
			for _, c := range conns {
				acked += c.ackedN.Load()
				errs += c.errors.Load()
			}
			fmt.Fprintf(w, "%3ds  acked %8d/s  total %9d  errors %d\n", sec, acked-last, acked, errs)
			last = acked
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
