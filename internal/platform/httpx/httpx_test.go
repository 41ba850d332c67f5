package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

func testHandler(t *testing.T) (http.Handler, *Metrics) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		if err := DecodeJSON(r, &v); err != nil {
			WriteError(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, apperr.E(apperr.NotFound, "no item %s", r.PathValue("id")))
	})
	mux.HandleFunc("GET /internal", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, errors.New("database password is hunter2"))
	})
	m := NewMetrics(prometheus.NewRegistry())
	return Instrument("test", m, 64, slog.New(slog.DiscardHandler), mux), m
}

func serve(h http.Handler, method, path, body string) (int, map[string]any) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var v map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	return rec.Code, v
}

func TestErrorsAreJSON(t *testing.T) {
	h, m := testHandler(t)
	cases := []struct {
		method, path, body string
		status             int
		errContains        string
	}{
		{"GET", "/panic", "", 500, "internal error"},
		{"GET", "/items/7", "", 404, "no item 7"},
		{"GET", "/internal", "", 500, "internal error"},
		{"GET", "/nope", "", 404, "no such route"},
		{"DELETE", "/echo", "", 405, "not allowed"},
		{"POST", "/echo", `{"a":"` + strings.Repeat("x", 100) + `"}`, 413, "larger than 64"},
		{"POST", "/echo", `{"a":`, 400, "invalid JSON"},
		{"POST", "/echo", ``, 400, "empty"},
		{"POST", "/echo", `{"a":1}{"b":2}`, 400, "more than one"},
	}
	for _, c := range cases {
		status, body := serve(h, c.method, c.path, c.body)
		msg, _ := body["error"].(string)
		if status != c.status || !strings.Contains(msg, c.errContains) {
			t.Errorf("%s %s: %d %q, want %d containing %q", c.method, c.path, status, msg, c.status, c.errContains)
		}
	}
	if status, body := serve(h, "POST", "/echo", `{"a":1}`); status != 200 || body["a"] != float64(1) {
		t.Fatalf("echo: %d %v", status, body)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("test", "GET /items/{id}", "404")); got != 1 {
		t.Fatalf("route metric = %v", got)
	}
	if m.Requests("test") != uint64(len(cases)+1) {
		t.Fatalf("request total %d", m.Requests("test"))
	}
}

// Shutdown lets an in-flight request finish and refuses new connections.
func TestGracefulShutdown(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		WriteJSON(w, 200, map[string]string{"done": "yes"})
	})
	srv := NewServer(ServerConfig{Addr: "127.0.0.1:0"}, Ops(h, prometheus.NewRegistry(), nil), slog.New(slog.DiscardHandler))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + srv.Addr() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()
	if body := <-got; !strings.Contains(body, `"done":"yes"`) {
		t.Fatalf("in-flight request: %q", body)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + srv.Addr() + "/healthz"); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}

func TestReadyz(t *testing.T) {
	failing := errors.New("connection refused")
	ops := Ops(http.NotFoundHandler(), prometheus.NewRegistry(), []Check{
		{Name: "db", Fn: func(context.Context) error { return nil }},
		{Name: "broker", Fn: func(context.Context) error { return failing }},
	})
	status, body := serve(ops, "GET", "/readyz", "")
	if status != 503 || !strings.Contains(body["error"].(string), "broker") {
		t.Fatalf("readyz: %d %v", status, body)
	}
	if status, _ := serve(ops, "GET", "/healthz", ""); status != 200 {
		t.Fatalf("healthz: %d", status)
	}
}

func TestRoundRobinTakesTurns(t *testing.T) {
	var got []int
	var hs []http.Handler
	for i := range 3 {
		hs = append(hs, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got = append(got, i) }))
	}
	rr := RoundRobin(hs...)
	for range 7 {
		rr.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	if fmt.Sprint(got) != "[0 1 2 0 1 2 0]" {
		t.Fatalf("turns %v", got)
	}
}

func TestRoutesIndexListsWhatIsServed(t *testing.T) {
	rt := NewRoutes()
	ok := func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 200, map[string]string{"ok": "yes"}) }
	rt.HandleFunc("GET /api/v1/things/{id}", "", ok)
	rt.HandleFunc("POST /api/v1/things", "JSON body", ok)
	rt.Index("things", "a thing store", map[string]any{"nodes": 3})
	rec := httptest.NewRecorder()
	rt.Mux.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var idx struct {
		System    string   `json:"system"`
		Endpoints []string `json:"endpoints"`
		Nodes     int      `json:"nodes"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.System != "things" || idx.Nodes != 3 || fmt.Sprint(idx.Endpoints) != "[GET api/v1/things/{id} POST api/v1/things (JSON body)]" {
		t.Fatalf("index %+v", idx)
	}
	rec = httptest.NewRecorder()
	rt.Mux.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/things", nil))
	if rec.Code != 200 {
		t.Fatalf("a listed route is not served: %d", rec.Code)
	}
}

func TestMetricsSnapshotBySystem(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	c := &routeCache{routes: map[string]*routeMetrics{}}
	m.observe(c, "a", "GET /x", 200, time.Millisecond)
	m.observe(c, "a", "GET /x", 503, 2*time.Second)
	m.observe(c, "a", "GET /y", 404, time.Millisecond)
	m.observe(&routeCache{routes: map[string]*routeMetrics{}}, "b", "GET /z", 500, time.Millisecond)
	s := m.Snapshot()
	a, b := s["a"], s["b"]
	if a == nil || b == nil || a.Requests != 3 || a.Errors != 1 || b.Requests != 1 || b.Errors != 1 {
		t.Fatalf("snapshot a %+v b %+v", a, b)
	}
	last := len(a.Buckets) - 1
	if a.Bounds[last] != 5 || a.Buckets[last] != 3 || a.Buckets[3] != 2 { // 3 ≤ 5 s; 2 ≤ 1 ms
		t.Fatalf("buckets %v over %v", a.Buckets, a.Bounds)
	}
}
