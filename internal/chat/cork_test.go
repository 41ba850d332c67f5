package chat

import (
	"net"
	"testing"
	"time"
)

// countingConn records each write that reaches the "socket".
type countingConn struct {
	net.Conn
	writes []string
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

func TestCorkedConnSendsABatchInOneWrite(t *testing.T) {
	under := &countingConn{}
	c := &corkedConn{Conn: under, writeTimeout: time.Second}

	_, _ = c.Write([]byte("a"))
	c.cork()
	for _, s := range []string{"b", "c", "d"} {
		_, _ = c.Write([]byte(s))
	}
	if len(under.writes) != 1 || c.heldBytes() != 3 {
		t.Fatalf("while corked: writes %q, held %d", under.writes, c.heldBytes())
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("e"))
	if err := c.uncork(); err != nil { // nothing held: no empty write
		t.Fatal(err)
	}
	want := []string{"a", "bcd", "e"}
	if len(under.writes) != len(want) {
		t.Fatalf("writes %q, want %q", under.writes, want)
	}
	for i := range want {
		if under.writes[i] != want[i] {
			t.Fatalf("writes %q, want %q", under.writes, want)
		}
	}
}
