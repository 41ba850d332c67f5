package chat

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func TestBadInputKeepsTheConnection(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	c := dial(t, inst.url, 3)
	ctx := context.Background()
	ts := time.Now().UTC().Format(time.RFC3339)
	cases := []struct{ frame, want string }{
		{`{"userId":"1",`, "invalid JSON"},
		{`"just a string"`, "must be a JSON object"},
		{`{"userId":"0","username":"abc","message":"x","timestamp":"` + ts + `","messageType":"TEXT"}`, "userId"},
		{`{"userId":"5","username":"a!","message":"x","timestamp":"` + ts + `","messageType":"TEXT"}`, "username"},
		{`{"userId":"5","username":"abc","message":"","timestamp":"` + ts + `","messageType":"TEXT"}`, "message"},
		{`{"userId":"5","username":"abc","message":"x","timestamp":"now","messageType":"TEXT"}`, "timestamp"},
		{`{"userId":"5","username":"abc","message":"x","timestamp":"` + ts + `","messageType":"SHOUT"}`, "messageType"},
		{`{"userId":"5","username":"abc","message":"a\u0000b","timestamp":"` + ts + `","messageType":"TEXT"}`, "NUL"},
	}
	for _, tc := range cases {
		if err := c.SendRaw(ctx, []byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Conn().Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, msg(5, "still here")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		f := readFrame(t, c)
		if f.Status != "ERROR" || !strings.Contains(f.Error, tc.want) {
			t.Fatalf("frame %s: got %+v, want an ERROR about %q", tc.frame, f, tc.want)
		}
	}
	if f := readFrame(t, c); f.Status != "ERROR" || !strings.Contains(f.Error, "binary") {
		t.Fatalf("binary frame: %+v", f)
	}
	// Replies come in order, and the connection still works: the valid
	// message's OK (and its broadcast, in either order).
	var ok, room bool
	for !ok || !room {
		f := readFrame(t, c)
		switch {
		case f.Status == "OK":
			ok = true
		case f.MessageID != "" && f.Message == "still here":
			room = true
		default:
			t.Fatalf("unexpected %+v", f)
		}
	}
	if got := testutil.ToFloat64(inst.sys.server.metrics.invalid); got != 9 {
		t.Fatalf("invalid counter %v, want 9", got)
	}
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	c := dial(t, inst.url, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.SendRaw(ctx, []byte(strings.Repeat("x", MaxFrame+1)))
	_, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("read after an oversized frame: %v, want close 1009", err)
	}
	// The server is unharmed.
	c2 := dial(t, inst.url, 1)
	if err := c2.Send(ctx, msg(1, "hello")); err != nil {
		t.Fatal(err)
	}
	for {
		if f := readFrame(t, c2); f.IsReply() {
			if f.Status != "OK" {
				t.Fatalf("%+v", f)
			}
			break
		}
	}
}

func TestUnknownRoomIs404JSON(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	for _, room := range []string{"0", "21", "abc", "007"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(inst.url, "http")+"/chat/"+room, nil)
		cancel()
		if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("room %s: err %v, resp %v", room, err, resp)
		}
		var body map[string]string
		if st := getJSON(t, inst.url+"/chat/"+room, &body); st != 404 || !strings.Contains(body["error"], "rooms are 1–20") {
			t.Fatalf("room %s: %d %v", room, st, body)
		}
	}
}

// What the WebSocket library refuses before the upgrade — a plain GET, a
// foreign Origin — is answered as JSON like every other error.
func TestRefusedUpgradeIsJSON(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	var body map[string]string
	resp, err := http.Get(inst.url + "/chat/3")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); resp.StatusCode != http.StatusUpgradeRequired || err != nil ||
		!strings.Contains(body["error"], "Upgrade") || resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("plain GET: %d %q %v (Upgrade %q)", resp.StatusCode, resp.Header.Get("Content-Type"), body, resp.Header.Get("Upgrade"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(inst.url, "http")+"/chat/3",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("foreign origin: err %v, resp %+v", err, resp)
	}
}

func TestFloodIsRateLimited(t *testing.T) {
	cfg := testConfig()
	cfg.Server.RateLimit = "5/s:5"
	inst := startChat(t, host.Engines{}, cfg)
	c := dial(t, inst.url, 1)
	ctx := context.Background()
	const n = 30
	for i := 0; i < n; i++ {
		if err := c.Send(ctx, msg(1, "flood")); err != nil {
			t.Fatal(err)
		}
	}
	ok, limited := 0, 0
	for ok+limited < n {
		f := readFrame(t, c)
		switch {
		case f.Status == "OK":
			ok++
		case f.Status == "ERROR" && strings.Contains(f.Error, "rate limit"):
			limited++
		case f.IsReply():
			t.Fatalf("unexpected reply %+v", f)
		}
	}
	if ok < 5 || ok > 7 || limited != n-ok {
		t.Fatalf("%d OK, %d rate-limited of %d; want about the burst of 5 accepted", ok, limited, n)
	}
}

// Binary frames spend from the same limit (they used to bypass it).
func TestBinaryFloodIsRateLimited(t *testing.T) {
	cfg := testConfig()
	cfg.Server.RateLimit = "5/s:5"
	inst := startChat(t, host.Engines{}, cfg)
	c := dial(t, inst.url, 1)
	ctx := context.Background()
	const n = 30
	for i := 0; i < n; i++ {
		if err := c.Conn().Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	binary, limited := 0, 0
	for binary+limited < n {
		f := readFrame(t, c)
		switch {
		case f.Status == "ERROR" && strings.Contains(f.Error, "rate limit"):
			limited++
		case f.Status == "ERROR" && strings.Contains(f.Error, "binary"):
			binary++
		default:
			t.Fatalf("unexpected %+v", f)
		}
	}
	if binary > 7 || limited < n-7 {
		t.Fatalf("%d binary errors, %d rate-limited of %d: binary frames are not rate-limited", binary, limited, n)
	}
}

// A text frame that is not UTF-8 fails the connection with 1007 (RFC 6455).
func TestInvalidUTF8ClosesWith1007(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	c := dial(t, inst.url, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ts := time.Now().UTC().Format(time.RFC3339)
	if err := c.SendRaw(ctx, []byte(`{"userId":"5","username":"abc","message":"`+"\xff\xfe"+`","timestamp":"`+ts+`","messageType":"TEXT"}`)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("read after invalid UTF-8: %v, want close 1007", err)
	}
}

// A client that stops reading is closed with 1008 once its queue is full,
// and the room carries on for everyone else.
func TestSlowConsumerIsClosed(t *testing.T) {
	cfg := testConfig()
	cfg.Server.SendBuffer = 16
	inst := startChat(t, host.Engines{}, cfg)
	slow := dial(t, inst.url, 4) // never reads until the end
	fast := dial(t, inst.url, 4)
	testsvc.WaitUntil(t, "both connected", 5*time.Second, func() bool { return inst.sys.server.Connections() == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	big := strings.Repeat("y", MaxMessage)
	// Enough bytes to fill the socket buffers between the server and the
	// slow client (a few MB on loopback), then its queue. The sender waits
	// for the replies to its 4 messages and for their 4 room copies (which
	// may lag the replies) before sending more, so that its own queue
	// never holds more than 8 frames.
	const window = 4
	for i := 0; i < 5000 && testutil.ToFloat64(inst.sys.server.metrics.slowClosed) == 0; i++ {
		for j := 0; j < window; j++ {
			if err := fast.Send(ctx, msg(9, big)); err != nil {
				t.Fatal(err)
			}
		}
		for replies, copies := 0, 0; replies < window || copies < window; {
			f, err := fast.Read(ctx)
			if err != nil {
				t.Fatalf("fast sender: %v", err)
			}
			switch {
			case f.Status == "OK":
				replies++
			case f.IsReply():
				t.Fatalf("fast sender: %+v", f)
			default:
				copies++
			}
		}
	}
	testsvc.WaitUntil(t, "slow consumer closed", 10*time.Second, func() bool {
		return testutil.ToFloat64(inst.sys.server.metrics.slowClosed) == 1
	})
	var err error
	for err == nil {
		_, err = slow.Read(ctx)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "slow consumer") {
		t.Fatalf("slow client's read ended with %v, want close 1008 slow consumer", err)
	}
}

func TestQueryAPIBadInput(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	cases := []struct {
		path   string
		status int
		want   string
	}{
		{"/api/v1/rooms/99/messages", 404, "unknown room"},
		{"/api/v1/rooms/1/messages?limit=0", 400, "limit"},
		{"/api/v1/rooms/1/messages?limit=5000", 400, "limit"},
		{"/api/v1/rooms/1/messages?cursor=abc", 400, "cursor"},
		{"/api/v1/rooms/1/messages?from=yesterday", 400, "from"},
		{"/api/v1/rooms/1/messages?to=2026-13-01T00:00:00Z", 400, "to"},
		{"/api/v1/users/0/messages", 400, "userId"},
		{"/api/v1/users/abc/rooms", 400, "userId"},
		{"/api/v1/rooms/active?since=soon", 400, "since"},
		{"/api/v1/nothing", 404, "no such route"},
	}
	for _, c := range cases {
		var body map[string]any
		st := getJSON(t, inst.url+c.path, &body)
		if st != c.status || !strings.Contains(body["error"].(string), c.want) {
			t.Errorf("%s: %d %v, want %d about %q", c.path, st, body, c.status, c.want)
		}
	}
}
