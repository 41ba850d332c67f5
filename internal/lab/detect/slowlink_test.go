package detect

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// A slow transport shuts down even while the inner transport's reader is
// blocked handing over a packet nobody takes (memberlist's NetTransport
// waits for its readers; a CI run hung for ten minutes there).
func TestSlowTransportShutsDownWithPacketsPending(t *testing.T) {
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0})
	if err != nil {
		t.Fatal(err)
	}
	st := NewSlowTransport(inner, func() time.Duration { return 0 })
	conn, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(inner.GetAutoBindPort())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Nobody reads the slow transport's packets: its buffer fills, the
	// relay blocks, and the inner reader blocks on its next packet.
	for i := 0; i < 1200; i++ {
		_, _ = conn.Write([]byte("ping"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(st.packets) < cap(st.packets) && time.Now().Before(deadline) {
		_, _ = conn.Write([]byte("ping"))
		time.Sleep(time.Millisecond)
	}
	if len(st.packets) < cap(st.packets) {
		t.Fatalf("only %d packets arrived", len(st.packets))
	}
	done := make(chan error, 1)
	go func() { done <- st.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hangs with packets pending")
	}
}
