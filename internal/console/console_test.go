package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/autoscale"
	"github.com/scalelab/scalelab/internal/lb"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
	"github.com/scalelab/scalelab/internal/raftkv"
)

// The fault buttons are admin operations; what they refuse is a 4xx with
// a JSON body; what they do shows in the next state.
func TestControlsNeedTheTokenAndShowTheirEffect(t *testing.T) {
	deps := &host.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()}
	rc, err := raftkv.NewLocalCluster(t.TempDir(), 3, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close(context.Background()) })
	admin, err := auth.NewAdminToken(strings.Repeat("t", 32))
	if err != nil {
		t.Fatal(err)
	}
	c := New("http://console", []host.System{rc}, httpx.NewMetrics(prometheus.NewRegistry()), admin, t.TempDir(), nil)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	post := func(path, token string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader("{}"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	good := strings.Repeat("t", 32)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/console/raftkv/nodes/1/stop", "", 401},
		{"/console/raftkv/nodes/1/stop", "wrong", 403},
		{"/console/raftkv/nodes/x/stop", good, 400},
		{"/console/raftkv/nodes/9/stop", good, 409},
		{"/console/raftkv/nodes/1/explode", good, 404},
		{"/console/dynamo/heal", good, 404}, // no dynamo in this process
	} {
		if code, body := post(tc.path, tc.token); code != tc.want || !strings.Contains(body, `"error"`) {
			t.Errorf("POST %s: %d %s, want %d with a JSON error", tc.path, code, body, tc.want)
		}
	}
	state := func() State {
		resp, err := http.Get(srv.URL + "/console/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st State
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	testsvc.WaitUntil(t, "a leader on the console", 10*time.Second, func() bool {
		c.refresh(time.Now())
		for _, n := range state().Raft.Nodes {
			if n.Role == "leader" {
				return true
			}
		}
		return false
	})
	if code, body := post("/console/raftkv/nodes/2/stop", good); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	if n := state().Raft.Nodes[1]; n.Running {
		t.Fatalf("node 2 after stop: %+v", n)
	}
	if code, body := post("/console/raftkv/nodes/2/stop", good); code != 409 {
		t.Fatalf("stopping it again: %d %s", code, body)
	}
}

// The event stream sends a state at once and another at each sample.
func TestEventsStreamTheState(t *testing.T) {
	c := New("http://console", nil, httpx.NewMetrics(prometheus.NewRegistry()), nil, t.TempDir(), nil)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/console/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	buf := make([]byte, 1<<16)
	read := func() string {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	if first := read(); !strings.HasPrefix(first, "data: {") {
		t.Fatalf("first event %q", first)
	}
	c.sample(time.Now())
	if second := read(); !strings.HasPrefix(second, "data: {") {
		t.Fatalf("second event %q", second)
	}
}

// An experiment started from the console runs with its quick settings,
// one at a time, and its report is listed when it is done.
func TestExperimentsRunFromTheConsole(t *testing.T) {
	admin, _ := auth.NewAdminToken(strings.Repeat("t", 32))
	c := New("http://console", nil, httpx.NewMetrics(prometheus.NewRegistry()), admin, t.TempDir(), nil)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	post := func(path string) (int, ExperimentRun) {
		req, _ := http.NewRequest("POST", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", 32))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var run ExperimentRun
		_ = json.NewDecoder(resp.Body).Decode(&run)
		return resp.StatusCode, run
	}
	if code, _ := post("/console/experiments/nonesuch/run"); code != 404 {
		t.Fatalf("unknown experiment: %d", code)
	}
	code, run := post("/console/experiments/concurrency/run")
	if code != 202 || run.ID == "" {
		t.Fatalf("start: %d %+v", code, run)
	}
	if code, _ := post("/console/experiments/concurrency/run"); code != 409 {
		t.Fatalf("a second run while one runs: %d", code)
	}
	var done ExperimentRun
	testsvc.WaitUntil(t, "the run's report", 120*time.Second, func() bool {
		resp, err := http.Get(srv.URL + "/console/experiments")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Runs []ExperimentRun }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		for _, r := range body.Runs {
			if r.ID == run.ID && !r.Running && r.Report != nil {
				done = r
				return true
			}
		}
		return false
	})
	if !done.Report.Passed || len(done.Report.Lesson) < 3 || done.Experiment != "concurrency" {
		t.Fatalf("run %+v", done)
	}
	// Its plots are served, and nothing but the report's files is.
	if len(done.Report.PlotFiles) == 0 || done.Report.Settings["goroutines"] == "" {
		t.Fatalf("plots %v settings %v", done.Report.PlotFiles, done.Report.Settings)
	}
	get := func(file string) (int, string) {
		resp, err := http.Get(srv.URL + "/console/experiments/runs/" + run.ID + "/files/" + file)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if code, ct := get(done.Report.PlotFiles[0]); code != 200 || ct != "image/svg+xml" {
		t.Fatalf("plot: %d %s", code, ct)
	}
	for _, file := range []string{"..%2Freport.json", "error.txt", "x.svg", "file.txt"} {
		if code, _ := get(file); code != 404 {
			t.Fatalf("%s: %d, want 404", file, code)
		}
	}
}

// A system's own metrics reach its card: its prefixed families and the
// shared ones labelled with its name, counters with their rates.
func TestOwnMetricsBySystem(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "scalelab_albums_reviews_total"})
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "scalelab_dependency_breaker_state"}, []string{"system", "dependency"})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "go_something_total"})
	reg.MustRegister(c, g, other)
	c.Add(5)
	g.WithLabelValues("albums", "broker").Set(2)
	g.WithLabelValues("shop", "payment").Set(0)
	prev := ownMetrics(reg, []string{"albums", "shop"})
	c.Add(10)
	cur := ownMetrics(reg, []string{"albums", "shop"})
	withRates(cur, prev, 2)
	albums := map[string]OwnMetric{}
	for _, m := range cur["albums"] {
		albums[m.Name+"|"+m.Labels] = m
	}
	if m := albums["reviews_total|"]; m.Value != 15 || m.Rate != 5 || m.Kind != "counter" {
		t.Fatalf("albums reviews %+v", m)
	}
	if m := albums["dependency_breaker_state|dependency=broker"]; m.Value != 2 || m.Rate != 0 {
		t.Fatalf("albums breaker %+v", m)
	}
	if len(cur["shop"]) != 1 || len(albums) != 2 {
		t.Fatalf("albums %v shop %v", cur["albums"], cur["shop"])
	}
}

// A load run from the console: bad plans are 400s, a good one runs
// against this server, is followed second by second and leaves its report.
func TestLoadRunsFromTheConsole(t *testing.T) {
	admin, _ := auth.NewAdminToken(strings.Repeat("t", 32))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { httpx.WriteJSON(w, 200, map[string]string{"ok": "yes"}) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	c := New(srv.URL, nil, httpx.NewMetrics(prometheus.NewRegistry()), admin, dir, nil)
	mux.Handle("/console/", c.Handler())
	post := func(body string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/console/load", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", 32))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, bad := range []string{`{"path":"ok","rate":10,"duration":"2s"}`, `{"path":"/ok","rate":0,"duration":"2s"}`,
		`{"path":"/ok","rate":10,"duration":"10m"}`, `{"path":"/ok","rate":10,"duration":"2s","method":"PATCH"}`, `{"path":`,
		`{"path":"/ok","rate":10,"vus":5,"duration":"2s"}`, `{"path":"/ok","vus":9999,"duration":"2s"}`, `{"path":"/ok","vus":-1,"duration":"2s"}`} {
		if code := post(bad); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	if code := post(`{"path":"/ok","rate":200,"duration":"2s"}`); code != 202 {
		t.Fatalf("start: %d", code)
	}
	if code := post(`{"path":"/ok","rate":200,"duration":"2s"}`); code != 409 {
		t.Fatalf("a second run: %d", code)
	}
	var cur *LoadRun
	testsvc.WaitUntil(t, "the load run to finish", 30*time.Second, func() bool {
		cur = c.load.snapshot()
		return cur != nil && !cur.Running
	})
	if cur.Error != "" || cur.Summary == nil || cur.Summary.Requests < 300 || cur.Summary.Errors != 0 || len(cur.Seconds) < 2 {
		t.Fatalf("run %+v", cur)
	}
	if _, err := os.Stat(filepath.Join(dir, "load", cur.ID, "report.md")); err != nil {
		t.Fatalf("report: %v", err)
	}
	resp, err := http.Get(srv.URL + "/console/load/runs/" + cur.ID + "/nothing.svg")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("a missing report file: %d %s, want a JSON 404", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The closed model: virtual users, each waiting for its answer.
	if code := post(`{"path":"/ok","vus":4,"duration":"1s"}`); code != 202 {
		t.Fatalf("start with VUs: %d", code)
	}
	testsvc.WaitUntil(t, "the VU run to finish", 30*time.Second, func() bool {
		cur = c.load.snapshot()
		return cur != nil && cur.VUs == 4 && !cur.Running
	})
	if cur.Error != "" || cur.Summary == nil || cur.Summary.Requests < 50 || cur.Summary.Errors != 0 {
		t.Fatalf("VU run %+v", cur)
	}
}

// One cluster node's console draws its own view, follows the leader it
// reports, and offers no controls, load or experiments.
func TestNodeConsoleShowsTheNodesOwnView(t *testing.T) {
	var view atomic.Value
	view.Store(raftkv.NodeState{ID: 2, Running: true, Role: "follower", Leader: 3, Term: 4, Commit: 9, Applied: 9})
	c := ForNode(host.NodeConsole{System: "raftkv", Description: "node 2", View: func() any { return view.Load() },
		Metrics: httpx.NewMetrics(prometheus.NewRegistry()), DataDir: t.TempDir()})
	st := c.snapshot()
	if st.Controls || st.Raft == nil || len(st.Raft.Nodes) != 1 || st.Raft.Nodes[0].ID != 2 || len(st.Systems) != 1 || st.Systems[0].Name != "raftkv" {
		t.Fatalf("state %+v", st)
	}
	if last := st.Raft.Elections[len(st.Raft.Elections)-1]; last.Leader != 3 || last.Term != 4 {
		t.Fatalf("elections %+v: want the leader the node follows", st.Raft.Elections)
	}
	view.Store(raftkv.NodeState{ID: 2, Running: true, Role: "leader", Leader: 2, Term: 5})
	c.sample(time.Now())
	if last := c.snapshot().Raft.Elections; last[len(last)-1].Leader != 2 || len(last) != 2 {
		t.Fatalf("elections %+v", last)
	}
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	for path, want := range map[string]int{"/console/experiments": 404, "/console/load": 404, "/": 200, "/console/state": 200} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequest("POST", srv.URL+"/console/raftkv/nodes/2/stop", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Fatalf("a stop without a cluster or a token: %v %v", resp, err)
	}
}

// The balancer's console draws its pool as the balancer reports it.
func TestNodeConsoleShowsTheBalancersPool(t *testing.T) {
	snap := lb.Snapshot{Policy: "peak-ewma", Backends: []lb.Backend{{ID: "127.0.0.1:1", State: "up", Weight: 2, InFlight: 3}, {ID: "127.0.0.1:2", State: "ejected"}}}
	c := ForNode(host.NodeConsole{System: "lb", View: func() any { return snap }, Metrics: httpx.NewMetrics(prometheus.NewRegistry()), DataDir: t.TempDir()})
	st := c.snapshot()
	if st.LB == nil || st.LB.Policy != "peak-ewma" || len(st.LB.Backends) != 2 || st.LB.Backends[0].InFlight != 3 || st.Controls {
		t.Fatalf("state %+v", st.LB)
	}
}

// The autoscaler's console draws its fleet and rounds as it reports them.
func TestNodeConsoleShowsTheAutoscalersFleet(t *testing.T) {
	m := 42.0
	snap := autoscale.Snapshot{Metric: "rps", Target: 40, Min: 1, Max: 3,
		Copies: []autoscale.CopyView{{Addr: "127.0.0.1:1", PID: 10, State: "serving"}, {Addr: "127.0.0.1:2", PID: 11, State: "starting"}},
		Rounds: []autoscale.RoundView{{Copies: 1, Metric: &m, Desired: 2, Reason: "up"}}}
	c := ForNode(host.NodeConsole{System: "autoscale", View: func() any { return snap }, Metrics: httpx.NewMetrics(prometheus.NewRegistry()), DataDir: t.TempDir()})
	st := c.snapshot()
	if st.Autoscale == nil || len(st.Autoscale.Copies) != 2 || st.Autoscale.Rounds[0].Desired != 2 || st.Controls || st.LB != nil {
		t.Fatalf("state %+v", st.Autoscale)
	}
}
