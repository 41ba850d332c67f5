package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

// LoadCommand is `scalelab load chat`.
func LoadCommand() *cobra.Command {
	p := LoadPlan{Connections: 40, Rooms: 20, Messages: 500_000, Warmup: 32_000, Window: 32}
	var servers, db, cpuProfile, out string
	var thresholds []string
	cmd := &cobra.Command{
		Use:   "chat",
		Short: "Load a chat deployment: N WebSocket connections across rooms and servers, M messages, send→ack and send→receive latency",
		Long: `Connections are spread round robin over the servers and the rooms; each sends
its share of the messages with at most --window awaiting their reply, after a
warm-up that is not measured. Send→ack is timed per message (replies come in
order); send→receive is timed on every room message a connection receives,
from the client timestamp the sender wrote, so clocks must be the same (one
machine). With --rate, sends are paced and latency counts from the intended
send time. With --db, the run also waits until every acked message is stored,
reports the persisted rate, and checks that none is lost or stored twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range strings.Split(servers, ",") {
				if s = strings.TrimSpace(s); s != "" {
					p.Servers = append(p.Servers, strings.TrimRight(s, "/"))
				}
			}
			if err := p.check(); err != nil {
				return apperr.Usage(err)
			}
			if cpuProfile != "" { // where the load generator's own CPU goes: it shares the machine
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			var ts []loadgen.Threshold
			for _, text := range thresholds {
				th, err := loadgen.ParseThreshold(text)
				if err != nil {
					return apperr.Usage(err)
				}
				ts = append(ts, th)
			}
			return runLoadCommand(cmd.Context(), p, db, out, ts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&servers, "servers", "ws://127.0.0.1:8090", "comma-separated ws://host:port of the chat servers")
	f.IntVar(&p.Connections, "connections", p.Connections, "WebSocket connections")
	f.IntVar(&p.Rooms, "rooms", p.Rooms, "rooms used (1..N)")
	f.IntVar(&p.Messages, "messages", p.Messages, "messages sent in the measured phase")
	f.IntVar(&p.Warmup, "warmup", p.Warmup, "messages sent before measuring")
	f.IntVar(&p.Window, "window", p.Window, "messages per connection awaiting their reply at most")
	f.Float64Var(&p.Rate, "rate", 0, "total messages/s, paced (open model); 0: as fast as replies come")
	f.DurationVar(&p.Deadline, "deadline", 10*time.Minute, "hard limit of the whole run")
	f.StringVar(&db, "db", "", "the chat's database URL: wait for persistence and check every acked message is stored once")
	f.BoolVar(&p.AllowRemote, "allow-remote", false, "allow servers outside the loopback range")
	f.Uint64Var(&p.Seed, "seed", 1, "seed of the message texts")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the load generator itself to this file")
	f.StringVar(&out, "out", "", "write the run's report here (the files `scalelab load --out` writes: summary.json for `load compare`, report.md, plots)")
	f.StringArrayVar(&thresholds, "threshold", nil, "fail with exit code 99 unless the send→ack latency or the errors meet this, as `scalelab load` (p99<50ms, errors<1%, rps>=40000); repeatable")
	return cmd
}

func runLoadCommand(ctx context.Context, p LoadPlan, dbURL, outDir string, thresholds []loadgen.Threshold, out io.Writer) error {
	var db *sqldb.DB
	if dbURL != "" {
		var err error
		if db, err = sqldb.Open(ctx, dbURL, ""); err != nil {
			return err
		}
		defer db.Close()
	}
	var counter *persistCounter
	if db != nil {
		counter = &persistCounter{db: db}
		p.OnMeasure = counter.start
		p.OnAnswered = counter.poll
	}
	res, err := RunLoad(ctx, p, out)
	if res == nil {
		return err
	}
	printLoad(out, p, res)
	if err != nil {
		return err
	}
	sum, serr := summarize(p, res)
	if serr != nil {
		return serr
	}
	if outDir != "" {
		if err := loadgen.WriteReport(outDir, sum); err != nil {
			return err
		}
		fmt.Fprintf(out, "report: %s\n", outDir)
	}
	lines, terr := loadgen.CheckThresholds(sum, thresholds)
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	if counter != nil {
		if err := counter.report(ctx, out, res); err != nil {
			return err
		}
		return terr
	}
	fmt.Fprintf(out, "RESULT acked_per_s=%.0f delivered_per_s=%.0f ack_p50_ms=%.2f ack_p99_ms=%.2f recv_p50_ms=%.2f recv_p99_ms=%.2f errors=%d missing_deliveries=%d\n",
		res.AckedPerSecond(), res.DeliveredPerSecond(), msOf(res.Ack, 50), msOf(res.Ack, 99), msOf(res.Receive, 50), msOf(res.Receive, 99),
		res.Errors, res.Expected-res.Received)
	return terr // a missed threshold: exit code 99, after the report
}

// summarize is the run as loadgen reports runs: a request is a message,
// its latency send→ack, an error an ERROR reply; room messages received
// are the receipts. Its summary.json compares and merges with any other.
func summarize(p LoadPlan, r *LoadResult) (loadgen.Summary, error) {
	model := "closed"
	if p.Rate > 0 {
		model = "open"
	}
	return loadgen.Summarize(&loadgen.Result{
		Target: "chat " + strings.Join(p.Servers, ","), Model: model, Started: time.Now().Add(-r.Elapsed),
		Elapsed: r.Elapsed, Requests: r.Sent, Errors: r.Errors, Received: r.Received, Latency: r.Ack,
		ByStatus: map[string]int64{"OK": r.Acked, "ERROR": r.Errors},
		Plan:     loadgen.PlanSummary{Rate: p.Rate, VUs: p.Connections, Connections: p.Connections, Requests: int64(p.Messages)},
	})
}

func msOf(h *hdr.Histogram, q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }

func printLoad(w io.Writer, p LoadPlan, r *LoadResult) {
	fmt.Fprintf(w, "\n%d servers, %d connections, %d rooms, window %d", len(p.Servers), p.Connections, p.Rooms, p.Window)
	if p.Rate > 0 {
		fmt.Fprintf(w, ", paced at %.0f msg/s", p.Rate)
	}
	fmt.Fprintf(w, "\nsent %d, acked %d, errors %d in %.2f s → %.0f msg/s acked\n",
		r.Sent, r.Acked, r.Errors, r.Elapsed.Seconds(), r.AckedPerSecond())
	fmt.Fprintf(w, "room messages received %d of %d expected; the last %.2f s after the start → %.0f msg/s delivered to every room member\n",
		r.Received, r.Expected, r.Delivered.Seconds(), r.DeliveredPerSecond())
	for _, h := range []struct {
		name string
		h    *hdr.Histogram
	}{{"send→ack    ", r.Ack}, {"send→receive", r.Receive}} {
		fmt.Fprintf(w, "%s  p50 %.2f ms  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms\n", h.name,
			msOf(h.h, 50), msOf(h.h, 90), msOf(h.h, 99), msOf(h.h, 99.9), float64(h.h.Max())/1000)
	}
}

// persistCounter polls how many messages of the measured phase are stored.
type persistCounter struct {
	db      *sqldb.DB
	since   time.Time
	firstID int64
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

type sample struct {
	at    time.Time
	count int64
}

func (c *persistCounter) start(now time.Time) {
	c.since = now
	// IDs of the measured phase: every warm-up message was acked before now.
	c.firstID = int64(snowflake.FirstID(now.Add(-time.Millisecond), snowflake.DefaultEpoch))
}

// poll counts the run's rows every 100 ms. It starts once every message
// is answered, not before: a count(*) over a growing range ten times a
// second cost PostgreSQL a sizeable share of the cores it shares with what
// is measured. (If everything is stored by the first count, the persisted
// rate is reported as the acked rate: that is its resolution.)
func (c *persistCounter) poll() {
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			if n, err := c.count(context.Background()); err == nil {
				c.mu.Lock()
				c.samples = append(c.samples, sample{time.Now(), n})
				c.mu.Unlock()
			}
		}
	}()
}

func (c *persistCounter) count(ctx context.Context) (int64, error) {
	var n int64
	err := c.db.QueryRowContext(ctx, c.db.Rebind("SELECT count(*) FROM chat_messages WHERE message_id >= ?"), c.firstID).Scan(&n)
	return n, err
}

// report waits until every acked message is stored (at most a minute),
// then prints the persisted rate and checks for lost and duplicated rows.
func (c *persistCounter) report(ctx context.Context, w io.Writer, r *LoadResult) error {
	if c.stop == nil {
		return errors.New("persistence counter never started")
	}
	deadline := time.Now().Add(time.Minute)
	var storedAt time.Time
	for storedAt.IsZero() && time.Now().Before(deadline) {
		c.mu.Lock()
		for _, s := range c.samples {
			if s.count >= r.Acked {
				storedAt = s.at
				break
			}
		}
		c.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	close(c.stop)
	<-c.done
	lost, dup, rows, err := c.verify(ctx, r)
	if err != nil {
		return err
	}
	persistRate := 0.0
	if !storedAt.IsZero() {
		persistRate = float64(r.Acked) / storedAt.Sub(c.since).Seconds()
		fmt.Fprintf(w, "persisted: all %d acked messages stored %.2f s after the start → %.0f msg/s end to end\n",
			r.Acked, storedAt.Sub(c.since).Seconds(), persistRate)
	} else {
		fmt.Fprintf(w, "persisted: NOT all acked messages stored within a minute\n")
	}
	fmt.Fprintf(w, "database: %d rows of this run, %d acked messages missing, %d stored twice\n", rows, lost, dup)
	fmt.Fprintf(w, "RESULT acked_per_s=%.0f delivered_per_s=%.0f persisted_per_s=%.0f ack_p50_ms=%.2f ack_p99_ms=%.2f recv_p50_ms=%.2f recv_p99_ms=%.2f errors=%d missing_deliveries=%d lost=%d duplicated=%d\n",
		r.AckedPerSecond(), r.DeliveredPerSecond(), persistRate, msOf(r.Ack, 50), msOf(r.Ack, 99), msOf(r.Receive, 50), msOf(r.Receive, 99),
		r.Errors, r.Expected-r.Received, lost, dup)
	if lost > 0 || dup > 0 {
		return fmt.Errorf("%d acked messages lost, %d stored twice", lost, dup)
	}
	return nil
}

// verify reads the run's rows: every acked ID must be there, and no text
// twice (each message the generator sends has a unique text).
func (c *persistCounter) verify(ctx context.Context, r *LoadResult) (lost, dup, rows int64, err error) {
	rs, err := c.db.QueryContext(ctx, c.db.Rebind("SELECT message_id, message FROM chat_messages WHERE message_id >= ?"), c.firstID)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("verify: %w", err)
	}
	defer rs.Close()
	ids := make(map[int64]struct{}, len(r.AckedIDs))
	texts := make(map[string]struct{}, len(r.AckedIDs))
	for rs.Next() {
		var id int64
		var text string
		if err := rs.Scan(&id, &text); err != nil {
			return 0, 0, 0, err
		}
		rows++
		ids[id] = struct{}{}
		key, _, _ := strings.Cut(text, " ") // "c<conn>-<seq>" is unique per send
		if _, seen := texts[key]; seen {
			dup++
		}
		texts[key] = struct{}{}
	}
	if err := rs.Err(); err != nil {
		return 0, 0, 0, err
	}
	for _, id := range r.AckedIDs {
		if _, ok := ids[id]; !ok {
			lost++
		}
	}
	return lost, dup, rows, nil
}
