package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// ErrDidNotHold is the run's error when the property under test failed
// (exit code 1): the report says which and why.
var ErrDidNotHold = errors.New("the property under test did not hold")

// Command is `scalelab experiment`: list, and run NAME.
func Command() *cobra.Command {
	root := &cobra.Command{Use: "experiment", Short: "Experiments that break a real system on purpose, measure, and state the lesson from the figures"}
	root.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "The experiments, what each asks and which system it breaks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, e := range Catalog() {
				fmt.Fprintf(cmd.OutOrStdout(), "%-16s %-8s %s\n", e.Name, e.System, e.Summary)
			}
			return nil
		},
	})
	run := &cobra.Command{Use: "run NAME", Short: "Run one experiment (scalelab experiment list names them)"}
	for _, e := range Catalog() {
		run.AddCommand(runCommand(e))
	}
	root.AddCommand(run, memberCommand(), capacityCommand())
	return root
}

func runCommand(e Experiment) *cobra.Command {
	var out, binary string
	cmd := &cobra.Command{Use: e.Name, Short: e.Summary, Args: cobra.NoArgs}
	runner := e.Bind(cmd.Flags())
	cmd.Flags().StringVar(&out, "out", e.Name+"-report", "report directory (report.md, report.json, and what the experiment draws)")
	cmd.Flags().StringVar(&binary, "binary", "", "scalelab binary for experiments that start processes (default: this one)")
	var quick bool
	cmd.Flags().BoolVar(&quick, "quick", false, "short settings (seconds, not minutes) that still show the lesson: "+quickSettings(e))
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if quick {
			for name, value := range e.Quick {
				if !cmd.Flags().Changed(name) {
					if err := cmd.Flags().Set(name, value); err != nil {
						return fmt.Errorf("experiment %s: quick setting --%s=%s: %w", e.Name, name, value, err)
					}
				}
			}
		}
		if binary == "" {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			binary = exe
		}
		w := cmd.OutOrStdout()
		r, err := Execute(cmd.Context(), runner, cmd.Flags(), Env{Log: w, Dir: out, Binary: binary})
		if err != nil {
			return fmt.Errorf("experiment %s: %w", e.Name, err)
		}
		r.Print(w)
		abs, _ := filepath.Abs(out)
		fmt.Fprintf(w, "\nreport: %s\n", filepath.Join(abs, "report.md"))
		if !r.Passed {
			return fmt.Errorf("experiment %s: %w", e.Name, ErrDidNotHold)
		}
		return nil
	}
	return cmd
}

func quickSettings(e Experiment) string {
	names := make([]string, 0, len(e.Quick))
	for k := range e.Quick {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []string
	for _, k := range names {
		out = append(out, "--"+k+"="+e.Quick[k])
	}
	return strings.Join(out, " ")
}

// Shortcut is `scalelab <system> <short>`: the experiment's run command
// under its system's command group, for those who look for it there.
func Shortcut(short, name string) *cobra.Command {
	e, ok := Find(name)
	if !ok {
		panic("lab: no experiment " + name)
	}
	cmd := runCommand(e)
	cmd.Use = short
	cmd.Short = e.Summary + " (= scalelab experiment run " + name + ")"
	return cmd
}
