package console

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
)

// loads runs `scalelab load http` from the console, in the manner of
// Locust's UI: pick a path, a method and body, a rate and a duration;
// watch it second by second; keep the report (the files `scalelab load
// --out` writes) under DATA/load. One run at a time, against this
// process only.
type loads struct {
	base string
	dir  string

	mu      sync.Mutex
	current *LoadRun
	cancel  context.CancelFunc
}

// LoadRun is a load run as the console shows it.
type LoadRun struct {
	ID       string                `json:"id"`
	Target   string                `json:"target"`
	Rate     float64               `json:"rate,omitempty"`
	VUs      int                   `json:"vus,omitempty"`
	Seconds  []loadgen.SecondStats `json:"seconds"`
	Running  bool                  `json:"running"`
	Summary  *loadgen.Summary      `json:"summary,omitempty"`
	Error    string                `json:"error,omitempty"`
	Finished time.Time             `json:"finished,omitzero"`
}

// loadRequest is POST /console/load.
type loadRequest struct {
	Path     string  `json:"path"` // under the console's base URL, e.g. /idgen/api/v1/ids
	Method   string  `json:"method"`
	Body     string  `json:"body"`
	Rate     float64 `json:"rate"` // open model: arrivals per second
	VUs      int     `json:"vus"`  // or closed model: virtual users, each waiting for its answer
	Duration string  `json:"duration"`
}

const (
	maxLoadRate     = 20_000
	maxLoadVUs      = 500
	maxLoadDuration = 2 * time.Minute
)

func (l *loads) routes(mux *http.ServeMux, require func(http.HandlerFunc) http.Handler) {
	mux.Handle("POST /console/load", require(l.start))
	mux.Handle("POST /console/load/stop", require(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		if l.cancel != nil {
			l.cancel()
		}
		l.mu.Unlock()
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "stopping"})
	}))
	mux.HandleFunc("GET /console/load", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"current": l.snapshot(), "runs": l.runs()})
	})
	mux.HandleFunc("GET /console/load/runs/{id}/{file}", func(w http.ResponseWriter, r *http.Request) {
		id, file := r.PathValue("id"), r.PathValue("file")
		if !runID.MatchString(id) || (file != "report.md" && file != "summary.json" && !strings.HasSuffix(file, ".svg")) || strings.Contains(file, "/") {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "no such report file"))
			return
		}
		path := filepath.Join(l.dir, id, file)
		if _, err := os.Stat(path); err != nil {
			httpx.WriteError(w, r, apperr.E(apperr.NotFound, "run %s has no %s", id, file))
			return
		}
		if strings.HasSuffix(file, ".svg") {
			w.Header().Set("Content-Type", "image/svg+xml")
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		http.ServeFile(w, r, path)
	})
}

func (l *loads) start(w http.ResponseWriter, r *http.Request) {
	var req loadRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	d, err := time.ParseDuration(req.Duration)
	switch {
	case !strings.HasPrefix(req.Path, "/") || strings.Contains(req.Path, "//"):
		err = apperr.E(apperr.Invalid, "path: a path under this server, e.g. /idgen/api/v1/ids")
	case (req.Rate > 0) == (req.VUs > 0) || req.Rate < 0 || req.VUs < 0:
		err = apperr.E(apperr.Invalid, "choose a model: rate (open, requests/s) or vus (closed, virtual users), not both")
	case req.Rate > maxLoadRate:
		err = apperr.E(apperr.Invalid, "rate: 0 < rate ≤ %d requests/s", maxLoadRate)
	case req.VUs > maxLoadVUs:
		err = apperr.E(apperr.Invalid, "vus: 1 to %d virtual users", maxLoadVUs)
	case err != nil || d < time.Second || d > maxLoadDuration:
		err = apperr.E(apperr.Invalid, "duration: 1s to %v", maxLoadDuration)
	}
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	if err == nil && !map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true}[req.Method] {
		err = apperr.E(apperr.Invalid, "method: GET, POST, PUT or DELETE")
	}
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	target := strings.TrimRight(l.base, "/") + req.Path
	if _, perr := url.Parse(target); perr != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "path: %v", perr))
		return
	}
	l.mu.Lock()
	if l.current != nil && l.current.Running {
		l.mu.Unlock()
		httpx.WriteError(w, r, apperr.E(apperr.Conflict, "a load run is going: stop it first"))
		return
	}
	run := &LoadRun{ID: "load-" + time.Now().UTC().Format("20060102-150405"), Target: req.Method + " " + target, Rate: req.Rate, VUs: req.VUs, Running: true}
	ctx, cancel := context.WithCancel(context.Background())
	l.current, l.cancel = run, cancel
	l.mu.Unlock()

	plan := loadgen.Plan{HTTP: &loadgen.HTTPTarget{URL: target, Method: req.Method, Body: req.Body}, Rate: req.Rate, VUs: req.VUs, Duration: d,
		Progress: func(sec loadgen.SecondStats, _ loadgen.Totals) {
			l.mu.Lock()
			run.Seconds = append(run.Seconds, sec)
			l.mu.Unlock()
		}}
	go func() {
		defer cancel()
		res, err := loadgen.Run(ctx, plan)
		var sum loadgen.Summary
		if err == nil {
			if sum, err = loadgen.Summarize(res); err == nil {
				err = loadgen.WriteReport(filepath.Join(l.dir, run.ID), sum)
			}
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		run.Running, run.Finished = false, time.Now()
		if err != nil {
			run.Error = err.Error()
			return
		}
		run.Summary = &sum
	}()
	httpx.WriteJSON(w, http.StatusAccepted, l.snapshot())
}

func (l *loads) snapshot() *LoadRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current == nil {
		return nil
	}
	c := *l.current
	c.Seconds = append([]loadgen.SecondStats(nil), c.Seconds...)
	return &c
}

// runs lists the reports kept on disk, newest first.
func (l *loads) runs() []string {
	entries, _ := os.ReadDir(l.dir)
	out := []string{}
	for _, e := range entries {
		if e.IsDir() && runID.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}
