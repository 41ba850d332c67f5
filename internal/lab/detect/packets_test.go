package detect

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
)

func TestHeartbeatPacketsRoundTripAndRefuseForgeries(t *testing.T) {
	k, _ := auth.ParseKey(auth.NewKeyText())
	other, _ := auth.ParseKey(auth.NewKeyText())
	p := encodeHeartbeat(k, "n1", 7)
	if name, seq, ok := decodeHeartbeat(k, p); !ok || name != "n1" || seq != 7 {
		t.Fatalf("decode: %q %d %v", name, seq, ok)
	}
	long := string(make([]byte, maxNameBytes+1))
	for what, packet := range map[string][]byte{
		"another key": encodeHeartbeat(other, "n1", 7), "empty": nil, "short": p[:10],
		"no name": k.SealDatagram([]byte("hb1\x00\x00\x00\x00\x00\x00\x00\x01")), "bad magic": k.SealDatagram([]byte("hb2\x00\x00\x00\x00\x00\x00\x00\x01n1")),
		"name too long": encodeHeartbeat(k, long, 1),
	} {
		if _, _, ok := decodeHeartbeat(k, packet); ok {
			t.Errorf("%s: decoded", what)
		}
	}
}

// A member that has gone silent stays declared failed whatever an outsider
// sends: forged, foreign and replayed heartbeats are dropped.
func TestObserverIsNotFooledByForgedOrReplayedHeartbeats(t *testing.T) {
	k, _ := auth.ParseKey(auth.NewKeyText())
	other, _ := auth.ParseKey(auth.NewKeyText())
	o, err := NewObserver("127.0.0.1:0", k, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go o.Run(ctx, 5*time.Millisecond)
	o.Watch("m")
	o.Watch("sentinel")
	conn, err := net.Dial("udp", o.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := encodeHeartbeat(k, "m", 1)
	_, _ = conn.Write(first)
	failed := map[string]bool{}
	for len(failed) < 2 { // both silent: declared failed
		select {
		case e := <-o.Events():
			failed[e.Member] = e.Failed
		case <-time.After(5 * time.Second):
			t.Fatal("no failure declared within 5 s")
		}
	}
	for _, forged := range [][]byte{first, encodeHeartbeat(other, "m", 99), encodeHeartbeat(k, "stranger", 1), []byte("garbage")} {
		_, _ = conn.Write(forged)
	}
	// The sentinel's genuine beat is read after the forgeries (one socket,
	// loopback): if any of them had revived m, that verdict would come first.
	_, _ = conn.Write(encodeHeartbeat(k, "sentinel", 1))
	waitEvent(t, o, "sentinel", false)
	if o.Refused() < 3 {
		t.Fatalf("refused %d packets, want the foreign key's, the stranger's and the garbage", o.Refused())
	}
	_, _ = conn.Write(encodeHeartbeat(k, "m", 2))
	waitEvent(t, o, "m", false)
}

func waitEvent(t *testing.T, o *Observer, member string, failed bool) {
	t.Helper()
	select {
	case e := <-o.Events():
		if e.Member != member || e.Failed != failed {
			t.Fatalf("event %+v, want %s failed=%v", e, member, failed)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no verdict on %s (failed=%v) within 5 s", member, failed)
	}
}

func TestSuspicionLogReadsMemberlistsLines(t *testing.T) {
	now := time.Unix(100, 0)
	l := NewSuspicionLog(func() time.Time { return now })
	for _, chunk := range []string{"2026/12/03 [INFO] memberlist: Suspect slow has fai", "led, no acks received\n[WARN] memberlist: Refuting a suspect message (from: a)\n",
		"[INFO] memberlist: Marking slow as failed, suspect timeout reached (0 peer confirmations)\n[INFO] memberlist: Suspect other has failed, no acks received\n"} {
		_, _ = l.Write([]byte(chunk))
	}
	if got := l.Suspicions("slow"); len(got) != 1 || !got[0].Equal(now) || len(l.Suspicions("other")) != 1 || l.Refuted() != 1 || l.Deaths("slow") != 1 {
		t.Fatalf("suspicions %v, other %v, refuted %d, deaths %d", got, l.Suspicions("other"), l.Refuted(), l.Deaths("slow"))
	}
}
