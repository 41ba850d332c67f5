package detect

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// SlowTransport is a memberlist transport whose datagrams, both ways, wait
// a delay while the link is slow (SetSlow). Streams pass unchanged.
type SlowTransport struct {
	memberlist.Transport
	delay   Delay
	slow    atomic.Bool
	packets chan *memberlist.Packet
	stop    chan struct{}
	once    sync.Once
}

// NewSlowTransport wraps inner with a link whose latency is delay.
func NewSlowTransport(inner memberlist.Transport, delay Delay) *SlowTransport {
	t := &SlowTransport{Transport: inner, delay: delay, packets: make(chan *memberlist.Packet, 1024), stop: make(chan struct{})}
	go t.relay()
	return t
}

// SetSlow turns the delay on or off.
func (t *SlowTransport) SetSlow(on bool) { t.slow.Store(on) }

// Slow reports whether the link is slow now.
func (t *SlowTransport) Slow() bool { return t.slow.Load() }

// WriteTo sends b after the delay; it reports the packet as sent now, as
// a real link does (the sender does not know the network is slow).
func (t *SlowTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if !t.slow.Load() {
		return t.Transport.WriteTo(b, addr)
	}
	packet := append([]byte(nil), b...)
	time.AfterFunc(t.delay(), func() { _, _ = t.Transport.WriteTo(packet, addr) })
	return time.Now(), nil
}

// PacketCh delivers received datagrams, late while the link is slow.
func (t *SlowTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *SlowTransport) relay() {
	for {
		select {
		case <-t.stop:
			return
		case p, ok := <-t.Transport.PacketCh():
			if !ok {
				return
			}
			if !t.slow.Load() {
				t.deliver(p)
				continue
			}
			time.AfterFunc(t.delay(), func() {
				p.Timestamp = time.Now() // received when it arrives, as memberlist's RTTs assume
				t.deliver(p)
			})
		}
	}
}

func (t *SlowTransport) deliver(p *memberlist.Packet) {
	select {
	case t.packets <- p:
	case <-t.stop:
	}
}

// Shutdown stops the relay and the inner transport. The inner transport's
// reader may be blocked handing over a packet that the stopped relay no
// longer takes (its Shutdown then waits for that reader for ever: a CI run
// hung there), so the packets are drained until it has shut down.
func (t *SlowTransport) Shutdown() error {
	t.once.Do(func() { close(t.stop) })
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-t.Transport.PacketCh():
			}
		}
	}()
	err := t.Transport.Shutdown()
	close(done)
	return err
}

var _ memberlist.Transport = (*SlowTransport)(nil)
