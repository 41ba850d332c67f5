package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/resilience"
)

// The client-reuse experiment is the course's HttpUser-vs-FastHttpUser
// comparison, asked the way it matters: the same closed-loop load on the
// shortener's redirects from clients that differ only in how they treat
// connections. The shortener runs as its own process, so the CPU this
// process spends is the client's alone.

// ClientReuseOptions shape one run.
type ClientReuseOptions struct {
	Workers  int
	Duration time.Duration // per client
}

// clientRun is what one client did.
type clientRun struct {
	Name      string
	Requests  int64
	Errors    int64
	RPS       float64
	P50MS     float64
	P99MS     float64
	CPUPerReq float64 // µs of this process's CPU per request
	Dials     int64   // TCP connections opened
}

func clientReuseExperiment() Experiment {
	return Experiment{
		Name: "client-reuse", System: "shortener",
		Summary: "The same load from a new connection per request, the default keep-alive pool and a pool sized to the workers: requests/s, p99, client CPU and connections opened",
		Quick:   map[string]string{"duration": "2s"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := ClientReuseOptions{Workers: 16, Duration: 8 * time.Second}
			fs.IntVar(&opts.Workers, "workers", opts.Workers, "concurrent requesters (closed loop)")
			fs.DurationVar(&opts.Duration, "duration", opts.Duration, "load per client")
			return func(ctx context.Context, env Env) (*Report, error) {
				if opts.Workers < 1 || opts.Workers > 1024 || opts.Duration < time.Second {
					return nil, apperr.Usagef("want 1 ≤ --workers ≤ 1024 and --duration ≥ 1s")
				}
				return runClientReuse(ctx, env, opts)
			}
		},
	}
}

func runClientReuse(ctx context.Context, env Env, opts ClientReuseOptions) (*Report, error) {
	base, stop, err := startShortener(ctx, env)
	if err != nil {
		return nil, err
	}
	defer stop()
	code, err := createLink(ctx, base)
	if err != nil {
		return nil, err
	}
	target := base + "/" + code
	clients := []struct {
		name string
		tr   func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport
	}{
		{"new connection per request", func(dial func(context.Context, string, string) (net.Conn, error)) *http.Transport {
			return &http.Transport{DialContext: dial, DisableKeepAlives: true}
		}},
		{"keep-alive, default pool (2 idle per host)", func(dial func(context.Context, string, string) (net.Conn, error)) *http.Transport {
			return &http.Transport{DialContext: dial, MaxIdleConns: 100, IdleConnTimeout: 90 * time.Second}
		}},
		{"keep-alive, pool sized to the workers", func(dial func(context.Context, string, string) (net.Conn, error)) *http.Transport {
			return &http.Transport{DialContext: dial, MaxIdleConns: opts.Workers, MaxIdleConnsPerHost: opts.Workers, IdleConnTimeout: 90 * time.Second}
		}},
	}
	var runs []clientRun
	for _, c := range clients {
		var dials atomic.Int64
		d := net.Dialer{Timeout: 5 * time.Second}
		tr := c.tr(func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		})
		run, err := closedLoop(ctx, tr, target, opts)
		tr.CloseIdleConnections()
		if err != nil {
			return nil, err
		}
		run.Name, run.Dials = c.name, dials.Load()
		runs = append(runs, run)
		fmt.Fprintf(env.Log, "%-44s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %6.1f µs CPU/req  %7d connections  %d errors\n",
			run.Name, run.RPS, run.P50MS, run.P99MS, run.CPUPerReq, run.Dials, run.Errors)
		if !resilience.Sleep(ctx, time.Second) { // let TIME_WAIT and the server settle between clients
			return nil, ctx.Err()
		}
	}
	r := clientReuseReport(opts, runs)
	r.Plots = clientReusePlots(runs)
	var b bytes.Buffer
	b.WriteString("# Client connection reuse (shortener redirects)\n\n| client | req/s | p50 ms | p99 ms | client CPU µs/req | connections opened | errors |\n|---|---|---|---|---|---|---|\n")
	for _, run := range runs {
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %.1f | %d | %d |\n", run.Name, run.RPS, run.P50MS, run.P99MS, run.CPUPerReq, run.Dials, run.Errors)
	}
	b.WriteString("\n" + lessonMarkdown(r))
	r.Body = b.String()
	return r, nil
}

func clientReuseReport(opts ClientReuseOptions, runs []clientRun) *Report {
	r := &Report{Experiment: "client-reuse", System: "shortener", Passed: true, Figures: map[string]float64{}}
	keys := []string{"new_conn", "default_pool", "sized_pool"}
	for i, run := range runs {
		if i < len(keys) {
			r.Figures[keys[i]+"_rps"], r.Figures[keys[i]+"_p99_ms"] = run.RPS, run.P99MS
			r.Figures[keys[i]+"_cpu_us_per_req"], r.Figures[keys[i]+"_connections"] = run.CPUPerReq, float64(run.Dials)
		}
		if run.Errors > run.Requests/100 {
			r.Lesson = append(r.Lesson, fmt.Sprintf("%s: %d errors of %d requests — more than 1 %%, so its figures are not comparable (out of ports? see TIME_WAIT).", run.Name, run.Errors, run.Requests))
		}
	}
	if len(runs) < 3 || runs[0].RPS == 0 {
		return r
	}
	fresh, def, sized := runs[0], runs[1], runs[2]
	r.Lesson = append(r.Lesson, fmt.Sprintf("A new connection per request: %.0f req/s, p99 %.2f ms, %.1f µs of client CPU per request, %d connections opened — a TCP handshake (and a TIME_WAIT socket left behind) for every request.",
		fresh.RPS, fresh.P99MS, fresh.CPUPerReq, fresh.Dials))
	r.Lesson = append(r.Lesson, fmt.Sprintf("Reusing connections with a pool sized to the %d workers: %.0f req/s (%.1f× as many), p99 %.2f ms, %.1f µs CPU per request, %d connections for %d requests.",
		opts.Workers, sized.RPS, sized.RPS/fresh.RPS, sized.P99MS, sized.CPUPerReq, sized.Dials, sized.Requests))
	switch {
	case opts.Workers > 2 && def.Dials > 10*sized.Dials+10:
		r.Lesson = append(r.Lesson, fmt.Sprintf("Go's default pool keeps only 2 idle connections per host: with %d workers it opened %d connections (%.0f req/s), closing the ones it could not keep — keep-alive that is not sized to the concurrency is half of a fix.",
			opts.Workers, def.Dials, def.RPS))
	default:
		r.Lesson = append(r.Lesson, fmt.Sprintf("The default pool opened %d connections at %d workers (%.0f req/s): at this concurrency its 2 idle connections per host did not cost much.", def.Dials, opts.Workers, def.RPS))
	}
	return r
}

// closedLoop runs opts.Workers requesters against target for opts.Duration.
func closedLoop(ctx context.Context, tr *http.Transport, target string, opts ClientReuseOptions) (clientRun, error) {
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var mu sync.Mutex
	hist := loadgen.NewHistogram()
	var requests, errs atomic.Int64
	cpu0 := cpuTime()
	start := time.Now()
	stop := start.Add(opts.Duration)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := loadgen.NewHistogram()
			for time.Now().Before(stop) && ctx.Err() == nil {
				t0 := time.Now()
				resp, err := client.Get(target)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusMovedPermanently {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				requests.Add(1)
				if err != nil {
					errs.Add(1)
					continue
				}
				_ = local.RecordValue(max(1, time.Since(t0).Microseconds()))
			}
			mu.Lock()
			hist.Merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	n := requests.Load()
	if n == 0 {
		return clientRun{}, errors.New("client-reuse: no request was made")
	}
	return clientRun{Requests: n, Errors: errs.Load(), RPS: float64(n-errs.Load()) / elapsed,
		P50MS: float64(hist.ValueAtQuantile(50)) / 1000, P99MS: float64(hist.ValueAtQuantile(99)) / 1000,
		CPUPerReq: float64((cpuTime() - cpu0).Microseconds()) / float64(n)}, nil
}

// cpuTime is the CPU this process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startShortener runs `scalelab shortener serve` on a free loopback port
// with its data in the report directory, and returns its base URL.
func startShortener(ctx context.Context, env Env) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	data, err := os.MkdirTemp(env.Dir, "shortener-data-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(env.Binary, "shortener", "serve", "--addr", addr, "--data", data)
	logf, err := os.Create(data + ".log")
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("client-reuse: start the shortener: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logf.Close()
		_ = os.RemoveAll(data)
	}
	base := "http://" + addr
	err = resilience.Retry(ctx, resilience.Backoff{Initial: 50 * time.Millisecond, Attempts: 200}, func(ctx context.Context) error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("client-reuse: the shortener did not become ready (log %s.log): %w", data, err)
	}
	return base, stop, nil
}

func createLink(ctx context.Context, base string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/links", bytes.NewReader([]byte(`{"url":"https://example.com/client-reuse"}`)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.Code == "" {
		return "", fmt.Errorf("client-reuse: creating the link: %d %v", resp.StatusCode, err)
	}
	return out.Code, nil
}
