package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// serverTimeLayout is how serverTimestamp is written: the millisecond of the
// message ID, in UTC, so the timestamp can always be recomputed from the ID.
const serverTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// conn is one WebSocket connection. Four goroutines serve it:
//
//   - read: frames in → validate → publish (pipelined) → reply queue;
//   - reply: waits for each publish's ack in arrival order → OK/ERROR frame;
//   - write: the send queue → the socket, what is queued in one write;
//   - ping: keep-alive, so that a vanished peer is noticed.
//
// Replies leave in the order of the messages they answer. The send queue is
// bounded and never waited on: when it is full the connection is closed as a
// slow consumer (close code 1008) instead of holding up its room.
type conn struct {
	s       *Server
	ws      *websocket.Conn
	tcp     *corkedConn // under ws
	room    int
	roomID  string
	send    chan []byte
	replies chan reply
	limiter *rate.Limiter
	wire    []byte // the read loop's encoding buffer (add copies it)

	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
}

// reply is an answer to come: a publish to wait for, or a ready frame.
type reply struct {
	pending broker.Pending
	frame   []byte
	id, ts  string
	start   time.Time
}

func newConn(s *Server, ws *websocket.Conn, tcp *corkedConn, room int) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		s: s, ws: ws, tcp: tcp, room: room, roomID: strconv.Itoa(room),
		send:    make(chan []byte, s.cfg.SendBuffer),
		replies: make(chan reply, s.cfg.MaxPending),
		limiter: s.newLimiter(),
		ctx:     ctx, cancel: cancel,
	}
}

// run serves the connection until it closes.
func (c *conn) run() {
	var wg sync.WaitGroup
	for _, loop := range []func(){c.writeLoop, c.replyLoop, c.pingLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop()
		}()
	}
	c.readLoop()
	c.closed.Store(true)
	c.cancel()
	wg.Wait()
	_ = c.ws.CloseNow()
}

func (c *conn) readLoop() {
	var frame bytes.Buffer // reused: nothing keeps a frame's bytes past its iteration
	for {
		typ, data, err := readMessage(c.ctx, c.ws, &frame)
		if err != nil {
			return // closed by the peer, by us, or over MaxFrame (coder/websocket sends 1009)
		}
		// Every frame spends from the rate limit, whatever it holds: a flood
		// of binary or malformed frames costs the server as much as one of
		// valid messages.
		switch {
		case c.limiter != nil && !c.limiter.Allow():
			c.s.metrics.rateLimited.Inc()
			c.replyError("rate limit: at most " + c.s.limit.String() + " messages per connection; this one was dropped")
		case typ != websocket.MessageText:
			c.s.metrics.invalid.Inc()
			c.replyError("binary frames are not accepted: send the message as JSON text")
		case !utf8.Valid(data):
			// RFC 6455 §8.1: a text frame that is not UTF-8 fails the
			// connection with 1007, rather than being quietly repaired.
			c.s.metrics.invalid.Inc()
			_ = c.ws.Close(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			return
		default:
			in, err := ParseInbound(data)
			if err != nil {
				c.s.metrics.invalid.Inc()
				c.replyError(err.Error())
				continue
			}
			c.publish(&in)
		}
		if c.ctx.Err() != nil {
			return
		}
	}
}

// readMessage reads the next message into buf (reset first) and returns its
// bytes, valid until the next call: ws.Read would allocate every frame.
func readMessage(ctx context.Context, ws *websocket.Conn, buf *bytes.Buffer) (websocket.MessageType, []byte, error) {
	typ, r, err := ws.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return 0, nil, err
	}
	return typ, buf.Bytes(), nil
}

func (c *conn) publish(in *Inbound) {
	start := time.Now()
	id, err := c.s.ids.Next()
	if err != nil {
		c.s.metrics.brokerErrors.Inc()
		c.replyError("server cannot issue message IDs right now (" + err.Error() + "); message not accepted")
		return
	}
	parts, _ := snowflake.Decode(id, c.s.ids.Epoch())
	out := Outbound{
		MessageID: id.String(), RoomID: c.roomID, UserID: in.UserID, Username: in.Username,
		Message: in.Message, Timestamp: in.Timestamp, ServerTimestamp: parts.Time.Format(serverTimeLayout),
		MessageType: in.MessageType,
	}
	c.wire = EncodeWire(c.wire[:0], &out)
	p, err := c.s.pub.add(c.ctx, c.wire)
	if err != nil {
		c.s.metrics.brokerErrors.Inc()
		c.replyError("broker unavailable, message not accepted: " + err.Error())
		return
	}
	c.queueReply(reply{pending: p, id: out.MessageID, ts: out.ServerTimestamp, start: start})
}

func (c *conn) replyError(msg string) {
	frame, _ := json.Marshal(Reply{Status: "ERROR", Error: msg})
	c.queueReply(reply{frame: frame})
}

// queueReply blocks while MaxPending replies are waiting: the read loop
// stops reading and TCP pushes back on a client that outruns the broker.
func (c *conn) queueReply(r reply) {
	select {
	case c.replies <- r:
	case <-c.ctx.Done():
	}
}

func (c *conn) replyLoop() {
	for {
		var r reply
		select {
		case <-c.ctx.Done():
			return
		case r = <-c.replies:
		}
		frame := r.frame
		if r.pending != nil {
			wctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.PublishTimeout)
			err := r.pending.Wait(wctx)
			cancel()
			switch {
			case c.ctx.Err() != nil:
				return
			case err != nil:
				c.s.metrics.brokerErrors.Inc()
				frame, _ = json.Marshal(Reply{Status: "ERROR",
					Error: "the broker did not confirm the message, so it may or may not reach the room: " + err.Error()})
			default:
				c.s.metrics.accepted.Inc()
				c.s.metrics.publishAck.Observe(time.Since(r.start).Seconds())
				frame = okFrame(r.id, r.ts)
			}
		}
		if !c.enqueue(frame) {
			return
		}
	}
}

// okFrame is the OK reply, written by hand: it is on every message's path
// and both values are plain ASCII.
func okFrame(id, ts string) []byte {
	b := make([]byte, 0, 80)
	b = append(b, `{"status":"OK","messageId":"`...)
	b = append(b, id...)
	b = append(b, `","serverTimestamp":"`...)
	b = append(b, ts...)
	return append(b, `"}`...)
}

// enqueue queues a frame without ever waiting; a full queue closes the
// connection as a slow consumer. It reports whether the frame was queued.
func (c *conn) enqueue(frame []byte) bool {
	if c.closed.Load() {
		return false
	}
	select {
	case c.send <- frame:
		return true
	default:
		if c.closeWith(websocket.StatusPolicyViolation, fmt.Sprintf("slow consumer: %d messages waiting to be sent", cap(c.send))) {
			c.s.metrics.slowClosed.Inc()
		}
		return false
	}
}

// closeWith starts the close handshake with a reason, once, without
// blocking the caller (the hub calls it while broadcasting).
func (c *conn) closeWith(code websocket.StatusCode, reason string) bool {
	if !c.closed.CompareAndSwap(false, true) {
		return false
	}
	go func() {
		_ = c.ws.Close(code, reason) // waits up to 5 s for the peer's close frame
		c.cancel()
	}()
	return true
}

// writeLoop sends the queue's frames, as many as are waiting at once in one
// write to the socket (see cork.go).
func (c *conn) writeLoop() {
	for {
		var frame []byte
		select {
		case <-c.ctx.Done():
			return
		case frame = <-c.send:
		}
		if err := c.writeBatch(frame); err != nil {
			c.closed.Store(true)
			c.cancel()
			return
		}
	}
}

// writeBatch writes first and whatever else is queued, up to maxHeld bytes.
func (c *conn) writeBatch(first []byte) error {
	wctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.WriteTimeout)
	defer cancel()
	c.tcp.cork()
	err := c.ws.Write(wctx, websocket.MessageText, first)
	for err == nil && c.tcp.heldBytes() < maxHeld {
		frame, ok := c.next()
		if !ok {
			break
		}
		err = c.ws.Write(wctx, websocket.MessageText, frame)
	}
	if uerr := c.tcp.uncork(); err == nil {
		err = uerr
	}
	return err
}

// next takes a queued frame without waiting.
func (c *conn) next() ([]byte, bool) {
	select {
	case frame := <-c.send:
		return frame, true
	default:
		return nil, false
	}
}

func (c *conn) pingLoop() {
	t := time.NewTicker(c.s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.WriteTimeout)
		err := c.ws.Ping(pctx)
		cancel()
		if err != nil {
			c.closed.Store(true)
			c.cancel()
			return
		}
	}
}
