package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
)

// instance is one running chat process (server and/or persister).
type instance struct {
	url string
	sys *System
}

// startChat runs the production wiring on 127.0.0.1:0 until the test ends.
func startChat(t testing.TB, e host.Engines, cfg Config) *instance {
	t.Helper()
	inst := &instance{}
	inst.url = hosttest.Start(t, e, func(ctx context.Context, d *host.Deps) (host.System, error) {
		sys, err := New(ctx, d, cfg)
		inst.sys = sys
		return sys, err
	})
	return inst
}

// testConfig runs both roles, unlimited, with short batches.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Server.RateLimit = "off"
	cfg.Persister.BatchWait = 10 * time.Millisecond
	return cfg
}

func wsURL(base string, room int) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/chat/" + strconv.Itoa(room)
}

func dial(t testing.TB, base string, room int) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, wsURL(base, room))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Conn().CloseNow() })
	return c
}

func msg(user int, text string) *Inbound {
	return &Inbound{UserID: strconv.Itoa(user), Username: "user" + strconv.Itoa(user), Message: text,
		Timestamp: time.Now().UTC().Format(time.RFC3339Nano), MessageType: TypeText}
}

// readFrame reads the next frame within 10 s.
func readFrame(t testing.TB, c *Client) *Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}

// getJSON fetches url and decodes the body into v; it returns the status.
func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: %d with Content-Type %q: %s", url, resp.StatusCode, ct, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
	return resp.StatusCode
}

// sender is a client that sends n messages as user, pipelined, and records
// which were acknowledged (replies come in order).
type sender struct {
	c     *Client
	user  int
	mu    sync.Mutex
	acked []string // message IDs answered OK
	errs  []string // ERROR replies
}

// run sends n messages and reads the n replies (ignoring room messages).
// It stops early, without failing, when the connection drops.
func (s *sender) run(ctx context.Context, n int, text func(i int) string) error {
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := s.c.Send(ctx, msg(s.user, text(i))); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for got := 0; got < n; {
		f, err := s.c.Read(ctx)
		if err != nil {
			return fmt.Errorf("after %d replies: %w", got, err)
		}
		if !f.IsReply() {
			continue
		}
		got++
		s.mu.Lock()
		if f.Status == "OK" {
			s.acked = append(s.acked, f.MessageID)
		} else {
			s.errs = append(s.errs, f.Error)
		}
		s.mu.Unlock()
	}
	return <-errc
}
