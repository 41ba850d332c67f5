package mapreduce

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Handler implements host.System: every route of MapReduce.
func (s *System) Handler() http.Handler {
	rt := httpx.NewRoutes()
	rt.HandleFunc("GET /api/v1/workers", "the workers heard from, their slots and attempts", s.handleWorkers)
	if s.coord == nil {
		rt.Index("mapreduce", description, map[string]any{"role": s.role})
		return rt.Mux
	}
	// Submitting reads files at any path the workers can see: an admin's
	// operation, not a client's.
	rt.Handle("POST /api/v1/jobs", `{"job","input","reducers","params","split_size"} (admin)`, s.admin.RequireFunc(s.handleSubmit))
	rt.Handle("POST /api/v1/corpus", `{"name","bytes","seed"}: a Zipf corpus into the blob store, to submit as its "input" (admin)`, s.admin.RequireFunc(s.handleCorpus))
	rt.HandleFunc("GET /api/v1/jobs", "the newest jobs", s.handleJobs)
	rt.HandleFunc("GET /api/v1/jobs/{id}", "state, counters and every attempt", s.handleJob)
	rt.HandleFunc("GET /api/v1/jobs/{id}/timeline.svg", "which worker ran which task when (Gantt)", s.handleTimeline)
	rt.HandleFunc("GET /api/v1/jobs/{id}/output", "the output: parts concatenated in reducer order, or ?part=N, or the finisher's result", s.handleOutput)
	rt.HandleFunc("GET /api/v1/jobtypes", "the registered jobs", s.handleJobTypes)
	rt.Index("mapreduce", description, map[string]any{"role": s.role})
	return rt.Mux
}

func (s *System) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	j, err := s.coord.Submit(r.Context(), req)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	st, err := s.coord.Status(r.Context(), j.Spec.ID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, st)
}

func (s *System) handleCorpus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string `json:"name"`
		Bytes int64  `json:"bytes"`
		Seed  uint64 `json:"seed"`
	}
	if err := httpx.DecodeJSON(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	input, err := GenerateCorpus(r.Context(), s.coord.blob, req.Name, req.Seed, req.Bytes)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"input": input, "bytes": req.Bytes})
}

// JobSummary is one line of GET /api/v1/jobs.
type JobSummary struct {
	ID      string  `json:"id"`
	Job     string  `json:"job"`
	State   string  `json:"state"`
	Error   string  `json:"error,omitempty"`
	Maps    int     `json:"maps"`
	Reduces int     `json:"reduces"`
	Seconds float64 `json:"seconds"`
}

func (s *System) handleJobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.coord.store.jobs(r.Context(), false, 50)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := []JobSummary{}
	now := s.coord.now()
	for _, j := range jobs {
		end := now
		if !j.Finished.IsZero() {
			end = j.Finished
		}
		out = append(out, JobSummary{ID: j.Spec.ID, Job: j.Spec.Job, State: j.State, Error: j.Error, Maps: len(j.Spec.Splits),
			Reduces: j.Spec.Reducers, Seconds: end.Sub(j.Submitted).Seconds()})
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

func (s *System) status(w http.ResponseWriter, r *http.Request) (*JobStatus, bool) {
	id := r.PathValue("id")
	if err := (attemptRef{Job: id, Kind: "map", Attempt: 1}).valid(); err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "no job %q", id))
		return nil, false
	}
	st, err := s.coord.Status(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return nil, false
	}
	return st, true
}

func (s *System) handleJob(w http.ResponseWriter, r *http.Request) {
	if st, ok := s.status(w, r); ok {
		httpx.WriteJSON(w, http.StatusOK, st)
	}
}

func (s *System) handleTimeline(w http.ResponseWriter, r *http.Request) {
	if st, ok := s.status(w, r); ok {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = io.WriteString(w, st.Timeline())
	}
}

func (s *System) handleOutput(w http.ResponseWriter, r *http.Request) {
	st, ok := s.status(w, r)
	if !ok {
		return
	}
	if st.State != JobDone {
		httpx.WriteError(w, r, apperr.E(apperr.Conflict, "job %s is %s, not done", st.ID, st.State))
		return
	}
	keys := st.Output
	switch q := r.URL.Query(); {
	case q.Get("result") != "" || (q.Get("part") == "" && st.Result != ""):
		if st.Result == "" {
			httpx.WriteError(w, r, apperr.E(apperr.NotFound, "job %s has no finisher result", st.ID))
			return
		}
		keys = []string{st.Result}
	case q.Get("part") != "":
		n, err := strconv.Atoi(q.Get("part"))
		if err != nil || n < 0 || n >= len(st.Output) {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "part must be 0–%d", len(st.Output)-1))
			return
		}
		keys = []string{st.Output[n]}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for i, k := range keys {
		if err := copyObject(r.Context(), s.coord.blob, k, w); err != nil {
			if i == 0 {
				httpx.WriteError(w, r, err)
			}
			return
		}
	}
}

func copyObject(ctx context.Context, store blob.Store, key string, w io.Writer) error {
	obj, err := store.Open(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return apperr.E(apperr.Gone, "the output %s is no longer in the blob store", key)
	}
	if err != nil {
		return err
	}
	defer obj.Close()
	_, err = io.Copy(w, obj)
	return err
}

func (s *System) handleJobTypes(w http.ResponseWriter, r *http.Request) {
	var out []map[string]string
	for _, n := range JobNames() {
		d, _ := Lookup(n)
		out = append(out, map[string]string{"name": n, "description": d.Description})
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

func (s *System) handleWorkers(w http.ResponseWriter, r *http.Request) {
	type view struct {
		ID string `json:"id"`
		workerSeen
	}
	out := []view{}
	if s.coord != nil {
		for id, ws := range s.coord.Workers() {
			out = append(out, view{ID: id, workerSeen: ws})
		}
	}
	for _, wk := range s.workers { // this process's own, heard or not
		found := false
		for _, v := range out {
			found = found || v.ID == wk.ID()
		}
		if !found {
			out = append(out, view{ID: wk.ID(), workerSeen: workerSeen{Slots: wk.cfg.Slots, Running: wk.runningRefs()}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"workers": out})
}
