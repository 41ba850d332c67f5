package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/scalelab/scalelab/internal/crawler"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/scalelab/scalelab/internal/console"
	"github.com/scalelab/scalelab/internal/idgen"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Run(context.Background(), append([]string{"scalelab"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsEverySystem(t *testing.T) {
	code, out, _ := run("--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, f := range systems() {
		if !strings.Contains(out, f.Name) {
			t.Errorf("--help does not list %s:\n%s", f.Name, out)
		}
	}
	if !strings.Contains(out, "up") {
		t.Error("--help does not list up")
	}
}

func TestDecode(t *testing.T) {
	code, out, errs := run("idgen", "decode", "382398728125808640")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var d struct {
		Worker, Sequence int
		Time             time.Time
		Base62           string
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.Time.Year() != 2026 || d.Base62 == "" {
		t.Fatalf("decoded %+v", d)
	}
	if code, out2, _ := run("idgen", "decode", "--base62", d.Base62); code != 0 || out2 != out {
		t.Fatalf("base62 decode: %d %q", code, out2)
	}
}

func TestBadUsageExitsTwo(t *testing.T) {
	for _, args := range [][]string{
		{"idgen", "decode"}, {"idgen", "decode", "1", "2"}, {"nosuchcommand"}, {"up", "--nosuchflag"},
		{"shortener", "serve", "--cache-ttl", "soon"},
	} {
		if code, _, errs := run(args...); code != 2 || !strings.HasPrefix(errs, "scalelab: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
	if code, _, errs := run("idgen", "decode", "not-an-id"); code != 1 || !strings.Contains(errs, "invalid id") {
		t.Errorf("bad id: exit %d, %q", code, errs)
	}
}

// `up` starts every system in one process: dashboard, /api/systems, the ops
// endpoints, the systems under their prefixes; cancelling stops it cleanly.
func TestUp(t *testing.T) {
	base, stop := startUp(t, systems())
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/idgen/api/v1/ids?count=3"} {
		if s, body := get(p); s != 200 {
			t.Fatalf("GET %s: %d %s", p, s, body)
		}
	}
	// Every system's base URL (the dashboard links to it) says what it serves.
	for _, f := range systems() {
		s, body := get("/" + f.Name + "/")
		var info struct {
			System    string
			Endpoints []string
		}
		if err := json.Unmarshal([]byte(body), &info); s != 200 || err != nil || info.System != f.Name || len(info.Endpoints) == 0 {
			t.Errorf("GET /%s/: %d %s", f.Name, s, body)
		}
	}
	// Errors inside one node of an in-process cluster are JSON too.
	for _, p := range []string{"/dynamo/n1/nothing", "/raftkv/1/nothing"} {
		if s, body := get(p); s != 404 || !json.Valid([]byte(body)) || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: %d %q, want a JSON 404", p, s, body)
		}
	}
	resp, err := http.Post(base+"/shortener/api/v1/links", "application/json", strings.NewReader(`{"url":"https://example.com/up"}`))
	if err != nil {
		t.Fatal(err)
	}
	var link struct {
		ShortURL string `json:"short_url"`
	}
	json.NewDecoder(resp.Body).Decode(&link)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.HasPrefix(link.ShortURL, base+"/shortener/") {
		t.Fatalf("create under up: %d %q", resp.StatusCode, link.ShortURL)
	}

	s, body := get("/api/systems")
	var list struct{ Systems []console.SystemInfo }
	if err := json.Unmarshal([]byte(body), &list); err != nil || s != 200 {
		t.Fatalf("/api/systems: %d %s", s, body)
	}
	if len(list.Systems) != len(systems()) {
		t.Fatalf("%d systems listed", len(list.Systems))
	}
	for _, sys := range list.Systems {
		if sys.BaseURL != base+"/"+sys.Name || sys.Description == "" {
			t.Fatalf("system %+v", sys)
		}
		if sys.Name == "idgen" && sys.Requests < 2 {
			t.Fatalf("idgen request count %d", sys.Requests)
		}
	}
	s, page := get("/")
	if s != 200 || !strings.Contains(page, "scalelab console") || !strings.Contains(page, "console/events") {
		t.Fatalf("console: %d %.300s", s, page)
	}
	if s, body := get("/no/such/thing"); s != 404 || !strings.Contains(body, `"error"`) {
		t.Fatalf("unknown path: %d %s", s, body)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// startUp runs Up with factories on a free port until stop, which returns
// Up's own error.
func startUp(t *testing.T, factories []host.Factory) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready, errc := make(chan string, 1), make(chan error, 1)
	go func() {
		errc <- Up(ctx, host.Engines{Addr: "127.0.0.1:0", Data: t.TempDir()}, factories,
			slog.New(slog.DiscardHandler), func(u string) { ready <- u })
	}()
	select {
	case base = <-ready:
	case err := <-errc:
		cancel()
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("up did not start")
	}
	return base, func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("up did not shut down")
		}
	}
}

// A bad or busy address fails before anything is opened: no data
// directory is left behind, and the error names the flag.
func TestUpBindsBeforeOpeningEngines(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	err := Up(context.Background(), host.Engines{Addr: "not-an-address", Data: data}, systems(), slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("a bad address: %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a bad address left %s behind (%v)", data, err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = Up(context.Background(), host.Engines{Addr: busy.Addr().String(), Data: data}, systems(), slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("a busy port: %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a busy port left %s behind", data)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run("version")
	if code != 0 || !strings.HasPrefix(out, "scalelab ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// A browser can chat under `up`: the chat's own page is same-origin, and
// --allowed-origins admits other pages; any other origin is refused.
func TestUpChatPageAndOrigins(t *testing.T) {
	base, stop := startUp(t, systemsWith([]string{"pages.example"}, crawler.DefaultConfig(), "127.0.0.1:0"))
	ctx := context.Background()
	resp, err := http.Get(base + "/chat/page")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "new WebSocket") {
		t.Fatalf("chat page: %d %.200s", resp.StatusCode, page)
	}
	ws := "ws" + strings.TrimPrefix(base, "http") + "/chat/chat/1"
	for origin, ok := range map[string]bool{base: true, "http://pages.example": true, "http://evil.example": false} {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, resp, err := websocket.Dial(dctx, ws, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		dcancel()
		if ok && err != nil {
			t.Errorf("origin %s refused: %v", origin, err)
		}
		if !ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %s admitted (%v)", origin, err)
		}
		if c != nil {
			c.CloseNow()
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// A system served on its own shows its console at /ui/, with itself at the
// base URL and its own metrics on its card.
func TestServeShowsItsConsoleAtUI(t *testing.T) {
	installConsole()
	t.Cleanup(func() { host.UI = nil })
	base := hosttest.Start(t, host.Engines{}, idgen.Factory(idgen.DefaultConfig()).New)
	for _, path := range []string{"/ui/", "/ui/console/assets/uPlot.iife.min.js"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(base + "/ui/console/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st console.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Systems) != 1 || st.Systems[0].Name != "idgen" || st.Systems[0].BaseURL != base || len(st.Systems[0].Own) == 0 {
		t.Fatalf("state %+v", st.Systems)
	}
}
