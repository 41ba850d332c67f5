package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WSTarget describes a WebSocket run. Each virtual user (or open-model
// connection) keeps one WebSocket open. A request sends Message (a
// template) and then, by mode:
//
//   - Expect set: waits for a message containing Expect; latency is send →
//     that reply (an echo, an ack, a chat message coming back);
//   - Broadcast: does not wait; every message any connection receives is
//     counted as a receipt (Result.Received), which is how fan-out is
//     measured: N senders, M listeners, receipts/s;
//   - neither: waits for the next message, whatever it is.
type WSTarget struct {
	URL       string
	Message   string
	Expect    string
	Broadcast bool
	Headers   []string
	Insecure  bool
}

type wsPlan struct {
	url       string
	msg       Template
	expect    []byte
	broadcast bool
	header    http.Header
	host      string
	display   string
	received  atomic.Int64
	client    *http.Client
}

func compileWS(t WSTarget) (*wsPlan, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("bad URL %q: want ws://host[:port]/path or wss://…", t.URL)
	}
	p := &wsPlan{url: t.URL, expect: []byte(t.Expect), broadcast: t.Broadcast, header: http.Header{},
		host: u.Hostname(), display: "WS " + t.URL}
	if t.Broadcast && t.Expect != "" {
		return nil, fmt.Errorf("choose --expect or --broadcast, not both")
	}
	if p.msg, err = ParseTemplate(t.Message); err != nil {
		return nil, fmt.Errorf("message: %w", err)
	}
	for _, hv := range t.Headers {
		name, value, ok := strings.Cut(hv, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("bad header %q: want \"Name: value\"", hv)
		}
		p.header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if t.Insecure {
		p.client = insecureClient()
	}
	return p, nil
}

type wsConn struct {
	plan    *wsPlan
	timeout time.Duration
	conn    *websocket.Conn
	buf     []byte
	readers sync.WaitGroup
	stop    context.CancelFunc
}

func newWSConn(p *wsPlan, timeout time.Duration) *wsConn { return &wsConn{plan: p, timeout: timeout} }

func (c *wsConn) dial(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, c.plan.url, &websocket.DialOptions{HTTPHeader: c.plan.header, HTTPClient: c.plan.client})
	if err != nil {
		return err
	}
	conn.SetReadLimit(1 << 20)
	c.conn = conn
	if c.plan.broadcast { // count every message this connection receives
		rctx, stop := context.WithCancel(context.Background())
		c.stop = stop
		c.readers.Add(1)
		go func() {
			defer c.readers.Done()
			for {
				if _, _, err := conn.Read(rctx); err != nil {
					return
				}
				c.plan.received.Add(1)
			}
		}()
	}
	return nil
}

func (c *wsConn) do(ctx context.Context, seq uint64, rng *rand.Rand) (int, int64, error) {
	if c.conn == nil {
		if err := c.dial(ctx); err != nil {
			return 0, 0, err
		}
	}
	c.buf = c.plan.msg.AppendTo(c.buf[:0], seq, rng)
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.conn.Write(rctx, websocket.MessageText, c.buf); err != nil {
		c.close()
		return 0, 0, err
	}
	if c.plan.broadcast {
		return 0, 0, nil
	}
	var n int64
	for {
		_, data, err := c.conn.Read(rctx)
		if err != nil {
			c.close()
			return 0, n, err
		}
		n += int64(len(data))
		c.plan.received.Add(1)
		if len(c.plan.expect) == 0 || bytes.Contains(data, c.plan.expect) {
			return 0, n, nil
		}
	}
}

func (c *wsConn) close() {
	if c.conn == nil {
		return
	}
	if c.stop != nil {
		c.stop()
	}
	_ = c.conn.CloseNow()
	c.readers.Wait()
	c.conn, c.stop = nil, nil
}
