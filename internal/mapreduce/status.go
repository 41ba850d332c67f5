package mapreduce

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/scalelab/scalelab/internal/platform/plot"
)

// JobStatus is what `scalelab mapreduce status` and the console show.
type JobStatus struct {
	ID          string    `json:"id"`
	Job         string    `json:"job"`
	Params      Params    `json:"params,omitempty"`
	State       string    `json:"state"`
	Error       string    `json:"error,omitempty"`
	Input       string    `json:"input"`
	Submitted   time.Time `json:"submitted"`
	Finished    time.Time `json:"finished,omitzero"`
	Seconds     float64   `json:"seconds"` // submission to done (or to now)
	Maps        int       `json:"maps"`
	MapsDone    int       `json:"maps_done"`
	Reduces     int       `json:"reduces"`
	ReducesDone int       `json:"reduces_done"`
	Counters    Counters  `json:"counters"`
	Output      []string  `json:"output,omitempty"` // blob keys of the parts, in order, once done
	Result      string    `json:"result,omitempty"` // the finisher's output, when the job has one
	Attempts    []AttemptView
}

// Counters are a job's totals, from the attempts that counted.
type Counters struct {
	InputBytes     int64 `json:"input_bytes"`
	RecordsRead    int64 `json:"records_read"`
	MapOutputBytes int64 `json:"map_output_bytes"`
	KeysReduced    int64 `json:"keys_reduced"`
	OutputBytes    int64 `json:"output_bytes"`
	Attempts       int   `json:"attempts"`
	Retries        int   `json:"retries"` // attempts after the first that were not backups
	Backups        int   `json:"backups"`
	Wasted         int   `json:"wasted"` // cancelled, lost, late or failed attempts
}

// AttemptView is one attempt on the timeline.
type AttemptView struct {
	Kind     string    `json:"kind"`
	Index    int       `json:"index"`
	Attempt  int       `json:"attempt"`
	State    string    `json:"state"`
	Worker   string    `json:"worker,omitempty"`
	Backup   bool      `json:"backup,omitempty"`
	Queued   time.Time `json:"queued"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Records  int64     `json:"records,omitempty"`
	Bytes    int64     `json:"bytes,omitempty"`
	Error    string    `json:"error,omitempty"`
}

// Status is the job's state with every attempt.
func (c *Coordinator) Status(ctx context.Context, id string) (*JobStatus, error) {
	j, err := c.store.job(ctx, id)
	if err != nil {
		return nil, err
	}
	rows, err := c.store.attempts(ctx, id)
	if err != nil {
		return nil, err
	}
	return statusOf(j, rows, c.now()), nil
}

func statusOf(j *JobRow, rows []AttemptRow, now time.Time) *JobStatus {
	s := &JobStatus{ID: j.Spec.ID, Job: j.Spec.Job, Params: j.Spec.Params, State: j.State, Error: j.Error, Input: j.Spec.InputRoot,
		Submitted: j.Submitted, Finished: j.Finished, Maps: len(j.Spec.Splits), Reduces: j.Spec.Reducers}
	end := now
	if !j.Finished.IsZero() {
		end = j.Finished
	}
	s.Seconds = end.Sub(j.Submitted).Seconds()
	if _, ok := j.Spec.Params["cuts"]; ok {
		s.Params = Params{}
		for k, v := range j.Spec.Params {
			if k != "cuts" {
				s.Params[k] = v
			}
		}
	}
	for _, sp := range j.Spec.Splits {
		s.Counters.InputBytes += sp.Length
	}
	for _, r := range rows {
		s.Attempts = append(s.Attempts, AttemptView{Kind: r.Ref.Kind, Index: r.Ref.Index, Attempt: r.Ref.Attempt, State: string(r.State),
			Worker: r.Worker, Backup: r.Backup, Queued: r.Queued, Started: r.Started, Finished: r.Finished, Records: r.Records, Bytes: r.Bytes, Error: r.Error})
		s.Counters.Attempts++
		switch {
		case r.Backup:
			s.Counters.Backups++
		case r.Ref.Attempt > 1:
			s.Counters.Retries++
		}
		switch r.State {
		case AttemptDone:
			if r.Ref.Kind == "map" {
				s.MapsDone++
				s.Counters.RecordsRead += r.Records
				s.Counters.MapOutputBytes += r.Bytes
			} else {
				s.ReducesDone++
				s.Counters.KeysReduced += r.Records
				s.Counters.OutputBytes += r.Bytes
			}
		case AttemptCancelled, AttemptLost, AttemptLate, AttemptFailed:
			s.Counters.Wasted++
		}
	}
	if j.State == JobDone {
		for r := 0; r < j.Spec.Reducers; r++ {
			s.Output = append(s.Output, partKey(j.Spec.ID, r))
		}
		if def, err := Lookup(j.Spec.Job); err == nil {
			if job, err := def.New(j.Spec.Params); err == nil {
				if _, ok := job.(Finisher); ok {
					s.Result = resultKey(j.Spec.ID)
				}
			}
		}
	}
	return s
}

// Timeline draws the job's attempts as a Gantt chart, one lane per
// worker: the paper's figure 3, for this job.
func (s *JobStatus) Timeline() string {
	g := plot.Gantt{Title: fmt.Sprintf("%s %s: %d maps, %d reduces, %.1f s", s.Job, s.ID, s.Maps, s.Reduces, s.Seconds),
		XLabel: "seconds since submission", Kinds: []string{"map", "reduce", "backup"}}
	lane := map[string]int{}
	var workers []string
	for _, a := range s.Attempts {
		if !a.Started.IsZero() {
			if _, ok := lane[a.Worker]; !ok {
				lane[a.Worker] = 0
				workers = append(workers, a.Worker)
			}
		}
	}
	slices.Sort(workers)
	for i, w := range workers {
		lane[w] = i
	}
	g.Lanes = workers
	end := s.Submitted.Add(time.Duration(s.Seconds * float64(time.Second)))
	for _, a := range s.Attempts {
		if a.Started.IsZero() {
			continue
		}
		fin := a.Finished
		if fin.IsZero() {
			fin = end
		}
		kind := 0
		label := fmt.Sprintf("m%d", a.Index)
		if a.Kind == "reduce" {
			kind, label = 1, fmt.Sprintf("r%d", a.Index)
		}
		if a.Backup {
			kind = 2
		}
		g.Spans = append(g.Spans, plot.Span{Lane: lane[a.Worker], Kind: kind, Label: label,
			Start: a.Started.Sub(s.Submitted).Seconds(), End: fin.Sub(s.Submitted).Seconds(),
			Wasted: a.State != string(AttemptDone) && a.State != string(AttemptRunning),
			Note: fmt.Sprintf("%s %d attempt %d on %s: %s, %.2f s %s", a.Kind, a.Index, a.Attempt, a.Worker, a.State,
				fin.Sub(a.Started).Seconds(), a.Error)})
	}
	return g.SVG()
}
