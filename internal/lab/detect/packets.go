package detect

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
)

// A heartbeat is "hb1", the sequence number (8 bytes, big endian) and the
// sender's name, sealed with the cluster key.
const heartbeatMagic = "hb1"

// maxNameBytes bounds a member's name in a heartbeat.
const maxNameBytes = 64

func encodeHeartbeat(key *auth.Key, name string, seq uint64) []byte {
	b := make([]byte, 0, len(heartbeatMagic)+8+len(name)+auth.DatagramTagBytes)
	b = append(b, heartbeatMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, name...)
	return key.SealDatagram(b)
}

// decodeHeartbeat opens and parses a packet; ok is false for anything that
// is not a well-formed heartbeat under key.
func decodeHeartbeat(key *auth.Key, packet []byte) (name string, seq uint64, ok bool) {
	b, ok := key.OpenDatagram(packet)
	if !ok || len(b) < len(heartbeatMagic)+8+1 || string(b[:len(heartbeatMagic)]) != heartbeatMagic {
		return "", 0, false
	}
	b = b[len(heartbeatMagic):]
	seq, nameBytes := binary.BigEndian.Uint64(b[:8]), b[8:]
	if len(nameBytes) > maxNameBytes {
		return "", 0, false
	}
	return string(nameBytes), seq, true
}

// Delay is a link's latency: how long the next datagram waits. Nil is an
// ordinary loopback link.
type Delay func() time.Duration

// Jitter is a slow link: base plus a uniform random share of jitter, drawn
// from a seeded source so that a run's draws can be repeated.
func Jitter(base, jitter time.Duration, seed uint64) Delay {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		if jitter <= 0 {
			return base
		}
		return base + time.Duration(r.Int64N(int64(jitter)))
	}
}

// SendHeartbeats sends name's heartbeat to addr every interval until ctx
// ends. When slow() is true each datagram first waits delay().
func SendHeartbeats(ctx context.Context, key *auth.Key, name, addr string, interval time.Duration, delay Delay, slow func() bool) error {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	var seq uint64
	for {
		seq++
		packet := encodeHeartbeat(key, name, seq)
		if delay != nil && slow != nil && slow() {
			time.AfterFunc(delay(), func() { _, _ = conn.Write(packet) })
		} else {
			_, _ = conn.Write(packet)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Event is a detector's verdict on a member, when it was reached.
type Event struct {
	Member string
	Failed bool // declared failed; false: alive again
	At     time.Time
}

// Observer receives heartbeats on a UDP port and declares failures.
type Observer struct {
	conn *net.UDPConn
	key  *auth.Key

	mu      sync.Mutex
	det     *Heartbeat
	seq     map[string]uint64 // highest accepted sequence number per watched member
	events  chan Event
	refused int
}

// NewObserver listens on addr (host:0 for any port) with a timeout detector.
func NewObserver(addr string, key *auth.Key, timeout time.Duration) (*Observer, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	return &Observer{conn: conn, key: key, det: NewHeartbeat(timeout), seq: map[string]uint64{}, events: make(chan Event, 1024)}, nil
}

// Addr is where heartbeats go.
func (o *Observer) Addr() string { return o.conn.LocalAddr().String() }

// Watch starts watching name from now; heartbeats from members not
// watched are refused.
func (o *Observer) Watch(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq[name] = 0
	o.det.Beat(name, time.Now())
}

// Forget stops watching name.
func (o *Observer) Forget(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seq, name)
	o.det.Forget(name)
}

// Events are the verdicts, as they are reached.
func (o *Observer) Events() <-chan Event { return o.events }

// Refused counts packets dropped for a bad tag or an unknown member.
func (o *Observer) Refused() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refused
}

// Run receives and checks until ctx ends; it closes the port.
func (o *Observer) Run(ctx context.Context, checkEvery time.Duration) {
	go func() {
		<-ctx.Done()
		o.conn.Close()
	}()
	go func() {
		t := time.NewTicker(checkEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				o.mu.Lock()
				failed := o.det.Check(now)
				o.mu.Unlock()
				for _, name := range failed {
					o.emit(Event{Member: name, Failed: true, At: now})
				}
			}
		}
	}()
	buf := make([]byte, 512)
	for {
		n, _, err := o.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		name, seq, ok := decodeHeartbeat(o.key, buf[:n])
		now := time.Now()
		o.mu.Lock()
		last, watched := o.seq[name]
		if !ok || !watched {
			o.refused++
			o.mu.Unlock()
			continue
		}
		if seq <= last { // overtaken on a jittery link, or replayed: nothing new
			o.mu.Unlock()
			continue
		}
		o.seq[name] = seq
		revived := o.det.Beat(name, now)
		o.mu.Unlock()
		if revived {
			o.emit(Event{Member: name, At: now})
		}
	}
}

func (o *Observer) emit(e Event) {
	select {
	case o.events <- e:
	default: // a reader that fell 1024 verdicts behind has stopped reading
	}
}
