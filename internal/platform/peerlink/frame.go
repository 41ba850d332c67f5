package peerlink

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Protocol is the Upgrade token of a link.
const Protocol = "scalelab-link/1"

const (
	requestHeader = 8 + 4 // id, timeout
	answerHeader  = 8     // id
)

// ErrFrameTooLarge is a frame over the reader's limit; the link is closed.
var ErrFrameTooLarge = errors.New("peerlink: frame too large")

// readFrame reads one frame's body (everything after the length) into a
// fresh slice: a frame's payload is handed to a handler or a caller that
// may keep it.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if int64(size) > int64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, size, limit)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// writeTimeout bounds one flush: a peer that stops reading is cut off
// instead of holding the writer, and through it every handler, forever.
const writeTimeout = 30 * time.Second

// frameWriter is a link's one writer: frames are queued and written by a
// goroutine that flushes whenever the queue runs dry. When it fails it
// closes the connection, which ends the link's reader too.
type frameWriter struct {
	queue chan []byte
	done  chan struct{} // closed when the writer stops
	err   error         // why it stopped; read after done
	once  sync.Once
	stop  chan struct{}
}

func newFrameWriter(conn net.Conn, depth int) *frameWriter {
	w := &frameWriter{queue: make(chan []byte, depth), done: make(chan struct{}), stop: make(chan struct{})}
	go w.run(conn)
	return w
}

func (w *frameWriter) run(conn net.Conn) {
	defer func() {
		conn.Close()
		close(w.done)
	}()
	bw := bufio.NewWriterSize(deadlineWriter{conn}, 64<<10)
	for {
		var f []byte
		select {
		case f = <-w.queue:
		case <-w.stop:
			w.err = net.ErrClosed
			return
		}
		_, err := bw.Write(f)
		releaseFrame(f)
		if err != nil {
			w.err = err
			return
		}
		for more := true; more; {
			select {
			case f = <-w.queue:
				_, err := bw.Write(f)
				releaseFrame(f)
				if err != nil {
					w.err = err
					return
				}
			default:
				more = false
			}
		}
		if err := bw.Flush(); err != nil {
			w.err = err
			return
		}
	}
}

// send queues f, a frame from newFrame that the writer owns from here on
// (it goes back to the pool once written); send fails once the writer has
// stopped.
func (w *frameWriter) send(f []byte) error {
	select {
	case w.queue <- f:
		return nil
	case <-w.done:
		return w.err
	}
}

// deadlineWriter gives each write to the connection writeTimeout.
type deadlineWriter struct{ conn net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return d.conn.Write(p)
}

func (w *frameWriter) close() { w.once.Do(func() { close(w.stop) }) }

// Frames are built in pooled buffers: the writer copies each into its
// bufio buffer and hands it back, so a busy link does not allocate (and
// the GC does not chase) a copy of every payload it sends. Frames above
// pooledFrame are allocated and left to the GC, so one large message does
// not pin a large buffer in the pool.
const pooledFrame = 64 << 10

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// newFrame returns a frame buffer of length n.
func newFrame(n int) []byte {
	if n > pooledFrame {
		return make([]byte, n)
	}
	b := *framePool.Get().(*[]byte)
	if cap(b) < n {
		b = make([]byte, n, min(max(n, 2*cap(b)), pooledFrame))
	}
	return b[:n]
}

// releaseFrame returns a written frame to the pool.
func releaseFrame(f []byte) {
	if cap(f) > pooledFrame {
		return
	}
	f = f[:0]
	framePool.Put(&f)
}

func appendRequest(id uint64, timeoutMs uint32, payload []byte) []byte {
	f := newFrame(4 + requestHeader + len(payload))
	binary.BigEndian.PutUint32(f, uint32(requestHeader+len(payload)))
	binary.BigEndian.PutUint64(f[4:], id)
	binary.BigEndian.PutUint32(f[12:], timeoutMs)
	copy(f[4+requestHeader:], payload)
	return f
}

func appendAnswer(id uint64, payload []byte) []byte {
	f := newFrame(4 + answerHeader + len(payload))
	binary.BigEndian.PutUint32(f, uint32(answerHeader+len(payload)))
	binary.BigEndian.PutUint64(f[4:], id)
	copy(f[4+answerHeader:], payload)
	return f
}
