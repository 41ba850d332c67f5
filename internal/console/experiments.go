package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/lab"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// experiments runs the lab's experiments from the console, with their
// --quick settings, one at a time, each into a directory of its own under
// DATA/experiments, where earlier runs stay.
type experiments struct {
	dir    string
	binary string

	mu      sync.Mutex
	running string                // the run in progress ("" when none)
	logs    map[string]*logBuffer // run → what it printed so far
}

// ExperimentRun is one run as the console lists it.
type ExperimentRun struct {
	ID         string      `json:"id"` // NAME-YYYYMMDD-HHMMSS
	Experiment string      `json:"experiment"`
	Running    bool        `json:"running"`
	Report     *lab.Report `json:"report,omitempty"`
	Error      string      `json:"error,omitempty"`
}

var runID = regexp.MustCompile(`^[a-z-]+-\d{8}-\d{6}$`)

func (e *experiments) routes(mux *http.ServeMux, require func(http.HandlerFunc) http.Handler) {
	mux.HandleFunc("GET /console/experiments", func(w http.ResponseWriter, r *http.Request) {
		type info struct {
			Name, System, Summary string
		}
		var list []info
		for _, x := range lab.Catalog() {
			list = append(list, info{x.Name, x.System, x.Summary})
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"experiments": list, "runs": e.runs()})
	})
	mux.Handle("POST /console/experiments/{name}/run", require(e.start))
	mux.HandleFunc("GET /console/experiments/runs/{id}/files/{file}", e.runFile)
	mux.HandleFunc("GET /console/experiments/runs/{id}/log", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !runID.MatchString(id) {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "run ID %q", clip(id)))
			return
		}
		e.mu.Lock()
		buf := e.logs[id]
		e.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if buf != nil {
			_, _ = w.Write(buf.bytes())
			return
		}
		data, err := os.ReadFile(filepath.Join(e.dir, id, "report.md"))
		if err != nil {
			httpx.WriteError(w, r, apperr.E(apperr.NotFound, "no run %s", id))
			return
		}
		_, _ = w.Write(data)
	})
}

// runFile serves a finished run's report files: report.md, report.json,
// its SVG plots and (linearizability) history.html. Nothing else under
// the run's directory is served.
func (e *experiments) runFile(w http.ResponseWriter, r *http.Request) {
	id, file := r.PathValue("id"), r.PathValue("file")
	ok := file == "report.md" || file == "report.json" || file == "history.html" ||
		(strings.HasSuffix(file, ".svg") && runFileName.MatchString(file))
	if !runID.MatchString(id) || !ok {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "no such report file"))
		return
	}
	path := filepath.Join(e.dir, id, file)
	if _, err := os.Stat(path); err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "run %s has no %s", id, file))
		return
	}
	switch filepath.Ext(file) {
	case ".md":
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeFile(w, r, path)
}

var runFileName = regexp.MustCompile(`^[a-z0-9-]+\.svg$`)

func (e *experiments) start(w http.ResponseWriter, r *http.Request) {
	x, ok := lab.Find(r.PathValue("name"))
	if !ok {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "no experiment %q (GET /console/experiments lists them)", clip(r.PathValue("name"))))
		return
	}
	e.mu.Lock()
	if e.running != "" {
		e.mu.Unlock()
		httpx.WriteError(w, r, apperr.E(apperr.Conflict, "%s is running; one experiment at a time", e.running))
		return
	}
	id := x.Name + "-" + time.Now().UTC().Format("20060102-150405")
	e.running = id
	buf := &logBuffer{}
	e.logs[id] = buf
	e.mu.Unlock()

	fs := pflag.NewFlagSet(x.Name, pflag.ContinueOnError)
	runner := x.Bind(fs)
	for name, value := range x.Quick {
		_ = fs.Set(name, value)
	}
	dir := filepath.Join(e.dir, id)
	go func() {
		defer func() {
			e.mu.Lock()
			e.running = ""
			delete(e.logs, id)
			e.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if _, err := lab.Execute(ctx, runner, fs, lab.Env{Log: buf, Dir: dir, Binary: e.binary}); err != nil {
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, "error.txt"), []byte(err.Error()+"\n\n"+string(buf.bytes())), 0o644)
		}
	}()
	httpx.WriteJSON(w, http.StatusAccepted, ExperimentRun{ID: id, Experiment: x.Name, Running: true})
}

// runs lists the runs on disk, newest first, and the one in progress.
func (e *experiments) runs() []ExperimentRun {
	entries, _ := os.ReadDir(e.dir)
	e.mu.Lock()
	running := e.running
	e.mu.Unlock()
	out := []ExperimentRun{}
	for _, d := range entries {
		if !d.IsDir() || !runID.MatchString(d.Name()) {
			continue
		}
		run := ExperimentRun{ID: d.Name(), Experiment: d.Name()[:strings.LastIndex(d.Name()[:strings.LastIndex(d.Name(), "-")], "-")], Running: d.Name() == running}
		if data, err := os.ReadFile(filepath.Join(e.dir, d.Name(), "report.json")); err == nil {
			var rep lab.Report
			if json.Unmarshal(data, &rep) == nil {
				run.Report = &rep
			}
		} else if data, err := os.ReadFile(filepath.Join(e.dir, d.Name(), "error.txt")); err == nil {
			run.Error = strings.SplitN(string(data), "\n", 2)[0]
		}
		out = append(out, run)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID[len(out[i].Experiment):] > out[j].ID[len(out[j].Experiment):] })
	return out
}

// logBuffer is a run's output so far, safe to read while it is written.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

var _ io.Writer = (*logBuffer)(nil)

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) < 1<<20 {
		b.buf = append(b.buf, p...)
	}
	return len(p), nil
}

func (b *logBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

func clip(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%.40s…", s)
	}
	return s
}
