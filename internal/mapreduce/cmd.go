package mapreduce

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
)

// Command is the `scalelab mapreduce` command group.
func Command() *cobra.Command {
	root := &cobra.Command{Use: "mapreduce", Short: description}
	coord, worker := DefaultConfig(), DefaultConfig()
	coord.Workers = 0
	worker.Role = "worker"
	c := host.ServeCommand("Run the coordinator: the job API, task state in the SQL store, leases, re-execution, backup tasks", "127.0.0.1:8098",
		func(f *pflag.FlagSet) {
			f.DurationVar(&coord.Policy.Lease, "lease", coord.Policy.Lease, "a running attempt without a heartbeat this long is lost and its task given to another worker")
			f.IntVar(&coord.Policy.MaxFailures, "max-failures", coord.Policy.MaxFailures, "failed or lost attempts of one task that fail the job")
			f.Float64Var(&coord.Policy.BackupFactor, "backup-factor", coord.Policy.BackupFactor, "a straggler running this many times the median task time gets a backup (0: no backups)")
			f.Float64Var(&coord.Policy.BackupTail, "backup-tail", coord.Policy.BackupTail, "backups start once no more than this fraction of a phase's tasks remain")
			f.DurationVar(&coord.Policy.BackupMin, "backup-min", coord.Policy.BackupMin, "a task is never backed up before it has run this long")
			f.IntVar(&coord.Workers, "workers", coord.Workers, "workers to run inside the coordinator's process")
			bindWorker(f, &coord.Worker)
			bindKey(f, &coord.ClusterKey)
		}, func() host.Factory { return Factory(coord) })
	c.Use = "coordinator"
	w := host.ServeCommand("Run a worker: take map and reduce tasks from the broker, read and write the blob store", "127.0.0.1:8099",
		func(f *pflag.FlagSet) { bindWorker(f, &worker.Worker); bindKey(f, &worker.ClusterKey) }, func() host.Factory { return Factory(worker) })
	w.Use = "worker"
	root.AddCommand(c, w, submitCommand(), statusCommand(), corpusCommand())
	return root
}

func bindKey(f *pflag.FlagSet, path *string) {
	f.StringVar(path, "cluster-key", os.Getenv("SCALELAB_CLUSTER_KEY"), "file holding the cluster key, the same for the coordinator and every worker: each message on the broker is sealed with it ($SCALELAB_CLUSTER_KEY; make one with scalelab cluster-key)")
}

func bindWorker(f *pflag.FlagSet, w *WorkerConfig) {
	f.IntVar(&w.Slots, "slots", w.Slots, "tasks a worker runs at once")
	f.StringVar(&w.TmpDir, "tmp", w.TmpDir, "where a worker spills and stages outputs (default: the system's temp dir)")
	f.StringVar(&w.ID, "worker-id", w.ID, "the worker's name on the timeline (default host-pid-random)")
}

// client is how the CLI reaches a coordinator.
type client struct {
	base, token string
	http        *http.Client
}

func bindClient(f *pflag.FlagSet, c *client) {
	f.StringVar(&c.base, "coordinator", "http://127.0.0.1:8098", "the coordinator's base URL (under scalelab up: http://127.0.0.1:8080/mapreduce)")
	f.StringVar(&c.token, "admin-token", os.Getenv("SCALELAB_ADMIN_TOKEN"), "the admin token (default $SCALELAB_ADMIN_TOKEN, else ./data/admin-token)")
}

func (c *client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.base, "/")+path, rd)
	if err != nil {
		return apperr.Usagef("--coordinator: %v", err)
	}
	if method != http.MethodGet {
		tok := c.token
		if tok == "" {
			raw, _ := os.ReadFile(filepath.Join("data", auth.AdminTokenFile))
			tok = strings.TrimSpace(string(raw))
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 5 * time.Minute}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("mapreduce: the coordinator at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("mapreduce: %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	return json.Unmarshal(raw, out)
}

func submitCommand() *cobra.Command {
	var c client
	var req SubmitRequest
	var params []string
	var wait bool
	cmd := &cobra.Command{Use: "submit", Short: "Submit a job (wordcount, invertedindex, grep, topk, sort …) and, with --wait, follow it to the end",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Params = Params{}
			for _, p := range params {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return apperr.Usagef("--param %q: want name=value", p)
				}
				req.Params[k] = v
			}
			if !strings.HasPrefix(req.Input, "blob:") && !strings.HasPrefix(req.Input, "s3://") {
				abs, err := filepath.Abs(req.Input)
				if err != nil {
					return apperr.Usagef("--input: %v", err)
				}
				req.Input = abs
			}
			var st JobStatus
			if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/jobs", req, &st); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s: %s, %d map tasks, %d reduce tasks\n", st.ID, st.Job, st.Maps, st.Reduces)
			if !wait {
				return nil
			}
			return follow(cmd.Context(), &c, st.ID, cmd.OutOrStdout())
		}}
	f := cmd.Flags()
	bindClient(f, &c)
	f.StringVar(&req.Job, "job", "wordcount", "the job: "+strings.Join(JobNames(), ", "))
	f.StringVar(&req.Input, "input", "", "a file or directory every worker can read at that path, blob:PREFIX, or s3://BUCKET/PREFIX of the --blob bucket")
	f.IntVar(&req.Reducers, "reducers", 4, "reduce tasks (R)")
	req.SplitSize = 64 << 20
	f.Var((*byteSize)(&req.SplitSize), "split-size", "input per map task: bytes, or with KiB, MiB, GiB")
	f.StringArrayVar(&params, "param", nil, "a job parameter name=value (grep: pattern=…, topk: k=…)")
	f.BoolVar(&wait, "wait", false, "follow the job until it ends")
	return cmd
}

func follow(ctx context.Context, c *client, id string, out io.Writer) error {
	last := ""
	for {
		var st JobStatus
		if err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+id, nil, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s: maps %d/%d, reduces %d/%d", st.State, st.MapsDone, st.Maps, st.ReducesDone, st.Reduces)
		if line != last {
			fmt.Fprintf(out, "%6.1fs %s\n", st.Seconds, line)
			last = line
		}
		switch st.State {
		case JobDone:
			fmt.Fprintf(out, "done in %.2f s; output: %s/api/v1/jobs/%s/output\n", st.Seconds, strings.TrimSuffix(c.base, "/"), id)
			return nil
		case JobFailed:
			return fmt.Errorf("mapreduce: job %s failed: %s", id, st.Error)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func statusCommand() *cobra.Command {
	var c client
	var asJSON bool
	cmd := &cobra.Command{Use: "status JOB", Short: "A job's state, counters and attempts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st JobStatus
			if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/jobs/"+args[0], nil, &st); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(out, "job %s (%s): %s after %.2f s %s\n", st.ID, st.Job, st.State, st.Seconds, st.Error)
			fmt.Fprintf(out, "maps %d/%d, reduces %d/%d; %d attempts (%d retries, %d backups, %d wasted)\n",
				st.MapsDone, st.Maps, st.ReducesDone, st.Reduces, st.Counters.Attempts, st.Counters.Retries, st.Counters.Backups, st.Counters.Wasted)
			fmt.Fprintf(out, "read %d bytes, %d records; map output %d bytes; %d keys reduced; output %d bytes\n",
				st.Counters.InputBytes, st.Counters.RecordsRead, st.Counters.MapOutputBytes, st.Counters.KeysReduced, st.Counters.OutputBytes)
			for _, a := range st.Attempts {
				took := ""
				if !a.Started.IsZero() && !a.Finished.IsZero() {
					took = a.Finished.Sub(a.Started).Round(time.Millisecond).String()
				}
				fmt.Fprintf(out, "  %-6s %4d.%d %-9s %-28s %8s %s\n", a.Kind, a.Index, a.Attempt, a.State, a.Worker, took, a.Error)
			}
			return nil
		}}
	bindClient(cmd.Flags(), &c)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

// byteSize is a flag of bytes that takes 64MiB as well as 67108864.
type byteSize int64

func (b *byteSize) String() string { return fmt.Sprint(int64(*b)) }
func (b *byteSize) Type() string   { return "size" }
func (b *byteSize) Set(s string) error {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("want a size like 67108864 or 64MiB")
	}
	*b = byteSize(n * mult)
	return nil
}

func corpusCommand() *cobra.Command {
	var out string
	var seed uint64
	size, fileSize := byteSize(1<<30), byteSize(64<<20)
	cmd := &cobra.Command{Use: "corpus", Short: "Write a deterministic Zipf-distributed corpus (the benchmark's input) into a directory",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return apperr.Usagef("give --out DIR")
			}
			return WriteCorpusFiles(out, seed, int64(size), int64(fileSize))
		}}
	cmd.Flags().StringVar(&out, "out", "", "the directory to write part-NNNNN.txt files into")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "the corpus's seed: the same seed, the same bytes")
	cmd.Flags().Var(&size, "size", "about this many bytes in all (e.g. 1GiB)")
	cmd.Flags().Var(&fileSize, "file-size", "bytes per file at most")
	return cmd
}
