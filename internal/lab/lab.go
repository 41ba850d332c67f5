package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/buildinfo"
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
	// Settings are the run's options, flag → value, as it used them.
	Settings map[string]string `json:"settings"`
	Machine  buildinfo.Machine `json:"machine"`
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"` // how long the run took
	// Plots are the run's charts, file name → SVG document, written beside
	// the report and shown in it; PlotFiles names them in report.json.
	Plots     map[string]string `json:"-"`
	PlotFiles []string          `json:"plots,omitempty"`
	// Body is the report's details in Markdown ("" when the experiment
	// wrote its own report.md into Dir).
	Body string `json:"-"`
}

// Write writes report.json, the plots, and report.md when there is a Body,
// into dir. report.json lists the plots by file name.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := r.plotNames()
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(r.Plots[name]), 0o644); err != nil {
			return err
		}
	}
	if len(names) > 0 {
		r.PlotFiles = names
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
	var b strings.Builder
	b.WriteString(r.Body)
	if len(names) > 0 {
		b.WriteString("\n## Plots\n\n")
		for _, name := range names {
			fmt.Fprintf(&b, "![%s](%s)\n\n", strings.TrimSuffix(name, ".svg"), name)
		}
	}
	b.WriteString(r.aboutMarkdown())
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

func (r *Report) plotNames() []string {
	names := make([]string, 0, len(r.Plots))
	for name := range r.Plots {
		if filepath.Base(name) == name && strings.HasSuffix(name, ".svg") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// aboutMarkdown is the report's last section: settings and machine, so a
// figure read later can be put beside the run that measured it.
func (r *Report) aboutMarkdown() string {
	var b strings.Builder
	b.WriteString("\n## The run\n\n")
	if !r.Started.IsZero() {
		fmt.Fprintf(&b, "Started %s, took %.1f s.\n\n", r.Started.UTC().Format(time.RFC3339), r.Seconds)
	}
	if len(r.Settings) > 0 {
		keys := make([]string, 0, len(r.Settings))
		for k := range r.Settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("Settings:")
		for _, k := range keys {
			fmt.Fprintf(&b, " `--%s=%s`", k, r.Settings[k])
		}
		b.WriteString("\n\n")
	}
	m := r.Machine
	if m.Go != "" {
		fmt.Fprintf(&b, "Machine: %s, %d CPUs (GOMAXPROCS %d), %s/%s, kernel %s; %s.\n", orUnknown(m.CPU), m.CPUs, m.GOMAXPROCS, m.OS, m.Arch, orUnknown(m.Kernel), m.Scalelab)
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Execute runs an experiment whose options are bound in fs: it times the
// run, records the settings and the machine, and writes the report (plots
// included) into env.Dir. Both `experiment run` and the console run
// experiments through it.
func Execute(ctx context.Context, run Runner, fs *pflag.FlagSet, env Env) (*Report, error) {
	if err := os.MkdirAll(env.Dir, 0o755); err != nil {
		return nil, err
	}
	started := time.Now()
	r, err := run(ctx, env)
	if err != nil {
		return nil, err
	}
	r.Started, r.Seconds = started, time.Since(started).Seconds()
	r.Machine = buildinfo.ThisMachine()
	r.Settings = map[string]string{}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "out" && f.Name != "binary" && f.Name != "quick" && f.Name != "help" {
			r.Settings[f.Name] = f.Value.String()
		}
	})
	if err := r.Write(env.Dir); err != nil {
		return nil, err
	}
	return r, nil
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
