package dynamo

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/client"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/peerlink"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// The attacks of the issue on real processes: replica RPC on the client
// port, forged replica writes, tombstones and hand-off dumps on the peer
// port, and joining without the key. With a cluster key none gets in.
func TestOutsidersCannotReachReplicasOrJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	bin := proctest.Binary(t)
	dir := t.TempDir()
	key := writeKey(t, dir)
	var nodes []*proc
	newProc := func(name, keyFile string) *proc {
		p := &proc{name: name, http: proctest.FreeAddr(t), peer: proctest.FreeAddr(t), gossip: proctest.FreeAddr(t),
			data: filepath.Join(dir, name), key: keyFile}
		nodes = append(nodes, p)
		return p
	}
	killAtEnd(t, dir, func() []*proc { return nodes })
	for i := 1; i <= 3; i++ {
		join := ""
		if i > 1 {
			join = nodes[0].gossip
		}
		newProc(fmt.Sprint("s", i), key).start(t, bin, join)
	}
	c1 := client.New("http://" + nodes[0].http)
	testsvc.WaitUntil(t, "three alive members", 20*time.Second, func() bool {
		st := memberStates(c1)
		return st["s1"] == "alive" && st["s2"] == "alive" && st["s3"] == "alive"
	})
	ctx := context.Background()
	if _, err := c1.Put(ctx, "secret", []byte("v"), "", 3); err != nil {
		t.Fatal(err)
	}

	forgedPut := replicaPut([]byte("injected"), "", []vclock.Version{{Dot: vclock.Entry{Node: "evil.1", Counter: 1}, Value: []byte("x")}})
	forgedDump := append([]byte{byte(opLeaves)}, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0)
	for _, msg := range [][]byte{forgedPut, forgedDump} {
		// The client port does not serve replica RPC at all.
		resp, err := http.Post("http://"+nodes[0].http+"/internal/rpc", "application/octet-stream", bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("replica RPC on the client port: %d, want 404", resp.StatusCode)
		}
		// The peer port: plain HTTP, TLS without a certificate, another cluster's member.
		if resp, err := http.Post("http://"+nodes[0].peer+"/internal/rpc", "application/octet-stream", bytes.NewReader(msg)); err == nil {
			if resp.StatusCode < 400 {
				t.Fatalf("plain HTTP on the peer port: %d", resp.StatusCode)
			}
			resp.Body.Close()
		}
		anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		if resp, err := anon.Post("https://"+nodes[0].peer+"/internal/rpc", "application/octet-stream", bytes.NewReader(msg)); err == nil {
			resp.Body.Close()
			t.Fatalf("TLS without a certificate: %d", resp.StatusCode)
		}
		otherKey, _ := auth.ParseKey(auth.NewKeyText())
		other, _ := auth.NewPeers(otherKey, "intruder")
		oc := &http.Client{Transport: other.Transport(&http.Transport{})}
		if resp, err := oc.Post(other.URL(nodes[0].peer, "/internal/rpc"), "application/octet-stream", bytes.NewReader(msg)); err == nil {
			resp.Body.Close()
			t.Fatalf("another cluster's member: %d", resp.StatusCode)
		}
	}
	if res, err := c1.Get(ctx, "injected", 3); err != nil || res.Found() {
		t.Fatalf("the forged replica write landed: %+v %v", res, err)
	}

	// A member announcing a body over the limit is refused before sending it.
	k, _ := auth.LoadKey(key)
	member, _ := auth.NewPeers(k, "member")
	conn, err := tls.Dial("tcp", nodes[0].peer, member.ClientTLS())
	if err != nil {
		t.Fatalf("a member cannot connect: %v", err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /internal/rpc HTTP/1.1\r\nHost: peer\r\nContent-Length: 900000000\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized peer request: %v %v, want 413", resp, err)
	}
	resp.Body.Close()

	// Links: another cluster's member cannot open one. A member's malformed
	// messages are answered 400, change nothing, and the link serves on; a
	// frame over the limit cuts the member's link.
	otherKey, _ := auth.ParseKey(auth.NewKeyText())
	other, _ := auth.NewPeers(otherKey, "intruder")
	outsider := peerlink.NewClient(LinkPath, other.ClientTLS(), 1<<20)
	defer outsider.Close()
	if _, err := outsider.Call(ctx, nodes[0].peer, forgedPut); !errors.Is(err, peerlink.ErrLinkDown) {
		t.Fatalf("another cluster's member over a link: %v", err)
	}
	link := peerlink.NewClient(LinkPath, member.ClientTLS(), 1<<20)
	defer link.Close()
	for _, bad := range [][]byte{{}, {0xff}, {byte(opReplicaPutMany), 0xff, 0xff, 0xff, 0xff, 0x0f}, {byte(opReplicaPut), 200, 1}, {byte(opLeaves), 0, 0, 20, 0xff}} {
		resp, err := link.Call(ctx, nodes[0].peer, bad)
		if err != nil {
			t.Fatalf("malformed message %x over a link: %v", bad, err)
		}
		d := newDecoder(resp[1:])
		if resp[0] != 1 || d.uint() != http.StatusBadRequest {
			t.Fatalf("malformed message %x over a link answered %x", bad, resp)
		}
	}
	if _, err := link.Call(ctx, nodes[0].peer, make([]byte, 200<<20)); !errors.Is(err, peerlink.ErrLinkDown) {
		t.Fatalf("a frame over the limit: %v", err)
	}
	if res, err := c1.Get(ctx, "secret", 3); err != nil || len(res.Values) != 1 {
		t.Fatalf("after the malformed link messages: %+v %v", res, err)
	}

	// Joining: one node with another key, one with none. Neither gets in;
	// each says in its log that no member answered.
	for _, p := range []*proc{newProc("intruder-key", writeKey(t, dir)), newProc("intruder-nokey", "")} {
		p.start(t, bin, nodes[0].gossip)
		logPath := filepath.Join(dir, p.name+".log")
		testsvc.WaitUntil(t, p.name+"'s join attempt", 15*time.Second, func() bool {
			b, _ := os.ReadFile(logPath)
			return bytes.Contains(b, []byte("no member answered yet"))
		})
	}
	// Gossip converges in its own time (s3 may have joined late); what must
	// never happen is an intruder among the members.
	for _, p := range nodes[:3] {
		var st map[string]string
		testsvc.WaitUntil(t, p.name+" to see the three members", 15*time.Second, func() bool {
			st = memberStates(client.New("http://" + p.http))
			return len(st) == 3
		})
		for name := range st {
			if strings.HasPrefix(name, "intruder") {
				t.Fatalf("%s sees members %v: an intruder got in", p.name, st)
			}
		}
	}
	if res, err := c1.Get(ctx, "secret", 3); err != nil || len(res.Values) != 1 {
		t.Fatalf("the cluster after the attempts: %+v %v", res, err)
	}
}
