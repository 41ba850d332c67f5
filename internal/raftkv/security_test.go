package raftkv

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/proctest"
)

const testAdminToken = "raftkv-test-admin-token"

// procCluster is three `scalelab raftkv node` processes on loopback.
type procCluster struct {
	t                testing.TB
	addrs, peerAddrs []string
	grpcAddrs        []string // etcd's KV API
	procs            []*proctest.Process
	keyFile          string
}

func startProcCluster(t *testing.T, withKey bool) *procCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	dir := t.TempDir()
	c := &procCluster{t: t}
	var peers []string
	for i := 0; i < 3; i++ {
		c.addrs, c.peerAddrs = append(c.addrs, proctest.FreeAddr(t)), append(c.peerAddrs, proctest.FreeAddr(t))
		c.grpcAddrs = append(c.grpcAddrs, proctest.FreeAddr(t))
		peers = append(peers, fmt.Sprintf("%d=%s", i+1, c.peerAddrs[i]))
	}
	var extra []string
	if withKey {
		c.keyFile = filepath.Join(dir, "cluster.key")
		if err := os.WriteFile(c.keyFile, []byte(auth.NewKeyText()), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = []string{"--cluster-key", c.keyFile}
	}
	for i := 0; i < 3; i++ {
		args := append([]string{"raftkv", "node", "--id", fmt.Sprint(i + 1), "--peer-addr", c.peerAddrs[i],
			"--peers", strings.Join(peers, ","), "--data", filepath.Join(dir, fmt.Sprint(i+1)), "--tick", "20ms",
			"--request-timeout", "2s", "--admin-token", testAdminToken, "--grpc-addr", c.grpcAddrs[i]}, extra...)
		c.procs = append(c.procs, proctest.Start(t, c.addrs[i], args...))
	}
	c.waitLeader()
	return c
}

func (c *procCluster) info(i int) (ClusterInfo, error) {
	var info ClusterInfo
	resp, err := http.Get("http://" + c.addrs[i] + "/v1/cluster")
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	return info, json.NewDecoder(resp.Body).Decode(&info)
}

func (c *procCluster) waitLeader() {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		agreed := 0
		for i := range c.addrs {
			if info, err := c.info(i); err == nil && info.Leader != 0 {
				agreed++
			}
		}
		if agreed == len(c.addrs) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("the cluster has no leader")
}

// serves writes through node i and reads the value back from every node.
func (c *procCluster) serves(i int, key, value string) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("PUT", "http://"+c.addrs[i]+"/v1/kv/"+key, strings.NewReader(value))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d does not take writes: %v", i+1, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for j := range c.addrs {
		resp, err := http.Get("http://" + c.addrs[j] + "/v1/kv/" + key)
		if err != nil {
			c.t.Fatalf("node %d: %v", j+1, err)
		}
		var b getBody
		_ = json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if b.Value == nil || *b.Value != value {
			c.t.Fatalf("node %d reads %s = %v, want %q", j+1, key, b.Value, value)
		}
	}
}

func (c *procCluster) admin(method, path, body, token string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, "http://"+c.addrs[0]+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c *procCluster) dropped(i int) float64 {
	c.t.Helper()
	resp, err := http.Get("http://" + c.addrs[i] + "/metrics")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	var sum float64
	if f := families["scalelab_raftkv_peer_messages_dropped_total"]; f != nil {
		for _, m := range f.Metric {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func batch(msgs ...raftpb.Message) []byte {
	var buf []byte
	for _, m := range msgs {
		b, _ := m.Marshal()
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	return buf
}

// The attacks of the issue, made from outside, on a cluster without a key
// (loopback demo mode: anyone on the machine reaches the peer port). The
// guard must drop them, and every node must stay up and restartable.
func TestForgedRaftMessagesLeaveEveryNodeUp(t *testing.T) {
	c := startProcCluster(t, false)
	c.serves(0, "before", "1")
	var msgs [][]byte
	for to := uint64(1); to <= 3; to++ {
		from := to%3 + 1
		msgs = append(msgs,
			batch(raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: to, Term: 1, Commit: 1 << 40}),
			batch(raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: to, Term: 1<<64 - 2}),
			batch(raftpb.Message{Type: raftpb.MsgApp, From: from, To: to, Term: 1 << 62, Index: 1, LogTerm: 1,
				Entries: []raftpb.Entry{{Index: 2, Term: 1 << 62, Data: []byte("forged")}}}),
			batch(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 99, To: to, Term: 2}),
		)
	}
	for i, body := range msgs {
		resp, err := http.Post("http://"+c.peerAddrs[i/4]+"/raft/messages", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("forged message %d: %v", i, err)
		}
		resp.Body.Close()
	}
	// Every node is up, none took the forged term, the cluster serves.
	c.serves(1, "after", "2")
	for i := range c.addrs {
		info, err := c.info(i)
		if err != nil {
			t.Fatalf("node %d is down after the forged messages: %v", i+1, err)
		}
		if info.Term > 1000 {
			t.Fatalf("node %d took a forged term: %d", i+1, info.Term)
		}
		if d := c.dropped(i); d < 4 {
			t.Fatalf("node %d counted %v dropped messages, want ≥ 4", i+1, d)
		}
	}
	// And every node restarts on its data, past the next elections.
	for _, p := range c.procs {
		p.Kill()
	}
	for _, p := range c.procs {
		p.Restart()
	}
	c.waitLeader()
	c.serves(2, "after-restart", "3")
}

// With a cluster key, nobody without it gets a message in: not plain
// HTTP, not TLS without a certificate, not a member of another cluster.
// A member's oversized request is refused before its body is sent.
func TestPeerPortRefusesOutsiders(t *testing.T) {
	c := startProcCluster(t, true)
	c.serves(0, "k", "v")
	forged := batch(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: 1<<64 - 2, Commit: 1 << 40})
	if resp, err := http.Post("http://"+c.peerAddrs[0]+"/raft/messages", "application/octet-stream", bytes.NewReader(forged)); err == nil {
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP to the peer port: %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := anon.Post("https://"+c.peerAddrs[0]+"/raft/messages", "application/octet-stream", bytes.NewReader(forged)); err == nil {
		resp.Body.Close()
		t.Fatalf("TLS without a client certificate: %d", resp.StatusCode)
	}
	otherKey, _ := auth.ParseKey(auth.NewKeyText())
	other, _ := auth.NewPeers(otherKey, "intruder")
	oc := &http.Client{Transport: other.Transport(&http.Transport{})}
	if resp, err := oc.Post(other.URL(c.peerAddrs[0], "/raft/messages"), "application/octet-stream", bytes.NewReader(forged)); err == nil {
		resp.Body.Close()
		t.Fatalf("another cluster's member got in: %d", resp.StatusCode)
	}

	// A member (it holds the key) announcing 600 MB: 413 before any body.
	key, err := auth.LoadKey(c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	member, _ := auth.NewPeers(key, "member")
	conn, err := tls.Dial("tcp", c.peerAddrs[0], member.ClientTLS())
	if err != nil {
		t.Fatalf("a member cannot connect: %v", err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /raft/messages HTTP/1.1\r\nHost: peer\r\nContent-Length: 600000000\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to an oversized announcement: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized peer request: %d, want 413", resp.StatusCode)
	}
	c.serves(1, "k", "still")
	for i := range c.addrs {
		if info, err := c.info(i); err != nil || info.Term > 1000 {
			t.Fatalf("node %d after the attempts: %+v %v", i+1, info, err)
		}
	}
}

// The membership API: only with the admin token, only valid addresses,
// never below a quorum of active voters, 404 for a non-member.
func TestMembershipAPIIsGuarded(t *testing.T) {
	c := startProcCluster(t, true)
	add := func(id int, addr, token string) (int, string) {
		return c.admin("POST", "/v1/members", fmt.Sprintf(`{"id":%d,"peer_addr":%q}`, id, addr), token)
	}
	if st, body := add(4, "127.0.0.1:1", ""); st != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
		t.Fatalf("no token: %d %s, want 401", st, body)
	}
	if st, _ := add(4, "127.0.0.1:1", "wrong-token-0123456789"); st != http.StatusForbidden {
		t.Fatalf("wrong token: %d, want 403", st)
	}
	if st, _ := c.admin("DELETE", "/v1/members/2", "", ""); st != http.StatusUnauthorized {
		t.Fatalf("remove without a token: %d, want 401", st)
	}
	if st, body := add(4, "not a host port", testAdminToken); st != http.StatusBadRequest {
		t.Fatalf("bad peer_addr: %d %s, want 400", st, body)
	}
	if st, body := add(4, c.peerAddrs[1], testAdminToken); st != http.StatusConflict {
		t.Fatalf("a member's peer address again: %d %s, want 409", st, body)
	}
	if st, body := c.admin("DELETE", "/v1/members/9", "", testAdminToken); st != http.StatusNotFound {
		t.Fatalf("remove a non-member: %d %s, want 404", st, body)
	}
	// Phantom voters (nothing listens there): two are allowed (3 active
	// of 5 is still a quorum), the third would lose it.
	for id := 4; id <= 5; id++ {
		if st, body := add(id, fmt.Sprintf("127.0.0.1:%d", id), testAdminToken); st != http.StatusOK {
			t.Fatalf("add phantom %d: %d %s", id, st, body)
		}
	}
	if st, body := add(6, "127.0.0.1:6", testAdminToken); st != http.StatusConflict || !strings.Contains(body, "quorum") {
		t.Fatalf("a third phantom: %d %s, want 409 (quorum)", st, body)
	}
	c.serves(2, "k", "with-phantoms")
	// The API can still undo what it did.
	for id := 5; id >= 4; id-- {
		if st, body := c.admin("DELETE", fmt.Sprintf("/v1/members/%d", id), "", testAdminToken); st != http.StatusOK {
			t.Fatalf("remove phantom %d: %d %s", id, st, body)
		}
	}
	info, err := c.info(0)
	if err != nil || len(info.Members) != 3 {
		t.Fatalf("members after removing the phantoms: %+v %v", info.Members, err)
	}
	c.serves(0, "k", "three-again")
}
