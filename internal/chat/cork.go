package chat

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Frame coalescing. coder/websocket flushes every message to the socket on
// its own: one write(2) per frame. Under load a connection's send queue
// holds many frames at once (a reply and a room's broadcasts), and one
// system call per frame was the largest single cost in the server's
// profile. The write loop therefore "corks" the connection while it drains
// its queue: the library's flushes land in a buffer, and uncork sends the
// whole batch with one write, like TCP_CORK does for a file server. A frame
// is never held back waiting for company: the batch is whatever is queued
// when the write loop wakes up, so an idle connection still writes each
// frame at once.

// corkedConn is the hijacked TCP connection under a WebSocket.
type corkedConn struct {
	net.Conn
	writeTimeout time.Duration

	mu     sync.Mutex // held across the real write, so batches never interleave
	corked bool
	held   []byte
}

// maxHeld bounds one batch: the write loop uncorks when this much is held.
const maxHeld = 64 << 10

func (c *corkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkedConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// heldBytes is how much the current batch holds.
func (c *corkedConn) heldBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// uncork writes what was held, within the write timeout, and lets later
// writes through.
func (c *corkedConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.held) == 0 {
		return nil
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	_, err := c.Conn.Write(c.held)
	_ = c.Conn.SetWriteDeadline(time.Time{})
	if cap(c.held) > maxHeld {
		c.held = nil // an unusual burst should not pin its buffer for the connection's life
	} else {
		c.held = c.held[:0]
	}
	return err
}

// corkingWriter hands websocket.Accept a corkedConn when it hijacks the
// connection, and keeps it for the write loop. A refusal Accept writes
// (http.Error: 400, 403, 426 as plain text) is held back instead, for
// ServeWS to answer as JSON like every other error.
type corkingWriter struct {
	http.ResponseWriter
	writeTimeout time.Duration
	conn         *corkedConn
	refused      int // the status of Accept's refusal, if any
	reason       []byte
}

func (w *corkingWriter) WriteHeader(code int) {
	if code >= 400 && w.conn == nil {
		w.refused = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *corkingWriter) Write(p []byte) (int, error) {
	if w.refused != 0 {
		if len(w.reason) < 1024 {
			w.reason = append(w.reason, p...)
		}
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("chat: hijack: %w", err)
	}
	w.conn = &corkedConn{Conn: nc, writeTimeout: w.writeTimeout}
	// The reader keeps what net/http has already buffered; the writer
	// must go through the corked connection.
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.conn, 4096)), nil
}

// Unwrap lets http.ResponseController reach the writer underneath.
func (w *corkingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
