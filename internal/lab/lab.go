package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/pflag"
)

// Experiment is one lesson.
type Experiment struct {
	Name    string // `scalelab experiment run NAME`
	System  string // the system it breaks
	Summary string // the question it answers, in one line
	// Bind adds the experiment's options to fs and returns the run that
	// uses them.
	Bind func(fs *pflag.FlagSet) Runner
	// Quick are the settings of --quick (flag → value), a run short enough
	// for CI that still shows the lesson; flags given explicitly win.
	Quick map[string]string
}

// Runner runs an experiment once.
type Runner func(ctx context.Context, env Env) (*Report, error)

// Env is what every run gets.
type Env struct {
	Log    io.Writer // progress, as the run goes
	Dir    string    // where the report goes (created)
	Binary string    // the scalelab binary, for experiments that start processes
}

// Report is what a run found.
type Report struct {
	Experiment string             `json:"experiment"`
	System     string             `json:"system"`
	Passed     bool               `json:"passed"` // the property under test held
	Lesson     []string           `json:"lesson"` // what this run shows, from its figures
	Figures    map[string]float64 `json:"figures"`
	// Body is the report's details in Markdown ("" when the experiment
	// wrote its own report.md into Dir).
	Body string `json:"-"`
}

// Write writes report.json, and report.md when there is a Body, into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if r.Body == "" {
		return nil
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.Body), 0o644)
}

// Print writes the lesson and the figures for a terminal.
func (r *Report) Print(w io.Writer) {
	verdict := "HELD"
	if !r.Passed {
		verdict = "DID NOT HOLD"
	}
	fmt.Fprintf(w, "\n%s (%s): the property %s\n", r.Experiment, r.System, verdict)
	fmt.Fprintln(w, "\nWhat this run shows:")
	for _, s := range r.Lesson {
		fmt.Fprintf(w, "  - %s\n", s)
	}
	if len(r.Figures) > 0 {
		names := make([]string, 0, len(r.Figures))
		for k := range r.Figures {
			names = append(names, k)
		}
		sort.Strings(names)
		fmt.Fprintln(w, "\nFigures:")
		for _, k := range names {
			fmt.Fprintf(w, "  %-32s %g\n", k, r.Figures[k])
		}
	}
}

// Find returns the experiment called name.
func Find(name string) (Experiment, bool) {
	for _, e := range Catalog() {
		if e.Name == name {
			return e, true
		}
	}
	return Experiment{}, false
}
