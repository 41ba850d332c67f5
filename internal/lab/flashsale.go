package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/plot"
	"github.com/scalelab/scalelab/internal/platform/promscrape"
)

// The flash-sale experiment: the same spike — Users buyers arriving
// within Over for Stock units — against three real deployments of
// `scalelab flashsale serve`: sync, async with workers, async with
// functions, each paying through the same `scalelab shop downstream`.

// FlashSaleOptions shape one run.
type FlashSaleOptions struct {
	Users, Stock     int
	Over             time.Duration // the arrivals' window
	PaymentLatency   time.Duration
	Workers          int
	FunctionConc     int
	ColdStart        time.Duration
	WorkerVCPU       float64 // per worker task, for the bill
	WorkerMemGB      float64
	FargateVCPUHour  float64 // USD, stated inputs
	FargateGBHour    float64
	LambdaPerMillion float64
	LambdaGBSecond   float64
	FunctionMemMB    int
	DB, Cache        string // engines for the deployments (empty: SQLite and the in-process gate)
}

type flashVariant struct {
	Name, Mode, Processor string
}

// flashResult is one variant's figures.
type flashResult struct {
	Variant       string
	Accepted      int64   // 201 or 202
	Refused       int64   // 409
	Failed        int64   // anything else
	AcceptedPerS  float64 // accepted over the arrivals' window
	P50, P99      float64 // ms, to an answer
	SettledAfterS float64 // from the first arrival until no order was in flight (−1: not within the bound)
	PeakDBConns   float64
	ColdStarts    int64
	Invocations   int64
	GBSeconds     float64
	Oversold      int
	Unsold        int
	Lost          int // accepted orders the sale does not count
	CostUSD       float64
	PerSecond     []loadgen.SecondStats
}

func flashSaleExperiment() Experiment {
	return Experiment{
		Name: "flash-sale", System: "flashsale",
		Summary: "10,000 buyers within a second for 1,000 units, against sync, async+workers and async+functions: accepted/s, time to an answer, time to settle, DB connections, cold starts, oversold and unsold, cost",
		Quick:   map[string]string{"users": "3000", "stock": "300"},
		Bind: func(fs *pflag.FlagSet) Runner {
			o := FlashSaleOptions{Users: 10000, Stock: 1000, Over: time.Second, PaymentLatency: 20 * time.Millisecond, Workers: 16, FunctionConc: 64, ColdStart: 250 * time.Millisecond,
				WorkerVCPU: 0.25, WorkerMemGB: 0.5, FargateVCPUHour: 0.04048, FargateGBHour: 0.004445, LambdaPerMillion: 0.20, LambdaGBSecond: 0.0000166667, FunctionMemMB: 128}
			fs.IntVar(&o.Users, "users", o.Users, "buyers, each once")
			fs.IntVar(&o.Stock, "stock", o.Stock, "units on sale")
			fs.DurationVar(&o.Over, "over", o.Over, "the window the buyers arrive in (open model, evenly)")
			fs.DurationVar(&o.PaymentLatency, "payment-latency", o.PaymentLatency, "the payment service's latency")
			fs.IntVar(&o.Workers, "workers", o.Workers, "async+workers: worker concurrency")
			fs.IntVar(&o.FunctionConc, "function-concurrency", o.FunctionConc, "async+functions: instances at most")
			fs.DurationVar(&o.ColdStart, "cold-start", o.ColdStart, "async+functions: a new instance's start-up")
			fs.StringVar(&o.DB, "db", "", "the deployments' database URL (empty: SQLite in the run's directory)")
			fs.StringVar(&o.Cache, "cache", "", "the deployments' cache URL; redis://… makes the async gate a Lua script on Redis")
			fs.Float64Var(&o.FargateVCPUHour, "price-vcpu-hour", o.FargateVCPUHour, "workers' price per vCPU-hour (USD; Fargate's list price)")
			fs.Float64Var(&o.FargateGBHour, "price-gb-hour", o.FargateGBHour, "workers' price per GB-hour (USD)")
			fs.Float64Var(&o.LambdaPerMillion, "price-per-million", o.LambdaPerMillion, "functions' price per million invocations (USD; Lambda's list price)")
			fs.Float64Var(&o.LambdaGBSecond, "price-gb-second", o.LambdaGBSecond, "functions' price per GB-second (USD)")
			return func(ctx context.Context, env Env) (*Report, error) { return runFlashSale(ctx, env, o) }
		},
	}
}

func runFlashSale(ctx context.Context, env Env, o FlashSaleOptions) (*Report, error) {
	if o.Users < 1 || o.Users > 50000 || o.Stock < 1 || o.Stock > o.Users || o.Over < 100*time.Millisecond || o.Over > time.Minute || o.Workers < 1 || o.FunctionConc < 1 {
		return nil, apperr.Usagef("want 1 ≤ --stock ≤ --users ≤ 50000, 100ms ≤ --over ≤ 1m, --workers and --function-concurrency ≥ 1")
	}
	token := auth.NewKeyText()
	payAddr, err := freeLocalAddr()
	if err != nil {
		return nil, err
	}
	pay := exec.Command(env.Binary, "shop", "downstream", "--addr", payAddr, "--latency", o.PaymentLatency.String(), "--admin-token", token)
	if err := pay.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = pay.Process.Kill(); _ = pay.Wait() }()
	if err := waitReady("http://" + payAddr + "/readyz"); err != nil {
		return nil, err
	}
	variants := []flashVariant{{"sync", "sync", "none"}, {"async+workers", "async", "workers"}, {"async+functions", "async", "functions"}}
	var results []flashResult
	for _, v := range variants {
		r, err := runFlashVariant(ctx, env, o, v, "http://"+payAddr, token)
		if err != nil {
			return nil, fmt.Errorf("flash-sale %s: %w", v.Name, err)
		}
		fmt.Fprintf(env.Log, "%-16s accepted %5d (%6.0f/s)  refused %5d  failed %4d  p50 %7.1f ms  p99 %7.1f ms  settled after %5.1f s  peak DB conns %3.0f  cold starts %3d  oversold %d  unsold %d  lost %d  cost $%.6f\n",
			v.Name, r.Accepted, r.AcceptedPerS, r.Refused, r.Failed, r.P50, r.P99, r.SettledAfterS, r.PeakDBConns, r.ColdStarts, r.Oversold, r.Unsold, r.Lost, r.CostUSD)
		results = append(results, r)
	}
	rep := flashSaleReport(o, results)
	rep.Plots = flashSalePlots(o, results)
	var b strings.Builder
	fmt.Fprintf(&b, "# A flash sale, three ways\n\n%d buyers within %v for %d units; payment latency %v.\n\n", o.Users, o.Over, o.Stock, o.PaymentLatency)
	b.WriteString("| variant | accepted | accepted/s | refused | failed | p50 ms | p99 ms | settled after s | peak DB conns | cold starts | oversold | unsold | lost | cost USD |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %d | %d | %.1f | %.1f | %.1f | %.0f | %d | %d | %d | %d | %.6f |\n", r.Variant, r.Accepted, r.AcceptedPerS, r.Refused, r.Failed, r.P50, r.P99, r.SettledAfterS, r.PeakDBConns, r.ColdStarts, r.Oversold, r.Unsold, r.Lost, r.CostUSD)
	}
	b.WriteString("\n" + lessonMarkdown(rep))
	rep.Body = b.String()
	return rep, nil
}

func runFlashVariant(ctx context.Context, env Env, o FlashSaleOptions, v flashVariant, payment, token string) (flashResult, error) {
	r := flashResult{Variant: v.Name, SettledAfterS: -1}
	addr, err := freeLocalAddr()
	if err != nil {
		return r, err
	}
	dir := filepath.Join(env.Dir, "flashsale-"+strings.ReplaceAll(v.Name, "+", "-"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	logFile, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return r, err
	}
	defer logFile.Close()
	cmd := exec.Command(env.Binary, "flashsale", "serve", "--addr", addr, "--data", dir, "--admin-token", token, "--mode", v.Mode, "--processor", v.Processor,
		"--payment", payment, "--workers", strconv.Itoa(o.Workers), "--function-concurrency", strconv.Itoa(o.FunctionConc), "--cold-start", o.ColdStart.String(),
		"--memory-mb", strconv.Itoa(o.FunctionMemMB))
	if o.DB != "" {
		cmd.Args = append(cmd.Args, "--db", o.DB)
	}
	if o.Cache != "" {
		cmd.Args = append(cmd.Args, "--cache", o.Cache)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + addr
	if err := waitReady(base + "/readyz"); err != nil {
		return r, err
	}
	var sale struct {
		ID string `json:"id"`
	}
	if err := flashCall(ctx, http.MethodPost, base+"/api/v1/sales", token, map[string]any{"item": "console", "stock": o.Stock, "per_user_limit": 1}, &sale); err != nil {
		return r, err
	}

	// Sample the pool's open connections while the spike and the
	// settling last.
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var peak float64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: time.Second}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
			if m, err := promscrape.Scrape(sampleCtx, client, base+"/metrics"); err == nil {
				if n, ok := m.Value("go_sql_open_connections"); ok && n > peak {
					peak = n
				}
			}
		}
	}()
	start := time.Now()
	plan := loadgen.Plan{HTTP: &loadgen.HTTPTarget{URL: base + "/api/v1/sales/" + sale.ID + "/orders", Method: http.MethodPost,
		Headers: []string{"Content-Type: application/json"}, Body: `{"userId":"u{{seq}}"}`},
		Rate: float64(o.Users) / o.Over.Seconds(), Duration: o.Over, Connections: 1024, Timeout: 15 * time.Second}
	res, err := loadgen.Run(ctx, plan)
	if err != nil {
		stopSampling()
		wg.Wait()
		return r, err
	}
	sum, err := loadgen.Summarize(res)
	if err != nil {
		stopSampling()
		wg.Wait()
		return r, err
	}
	r.Accepted = sum.Status["201"] + sum.Status["202"]
	r.Refused = sum.Status["409"]
	r.Failed = sum.Requests - r.Accepted - r.Refused
	r.AcceptedPerS = float64(r.Accepted) / math.Max(o.Over.Seconds(), sum.DurationS)
	r.P50, r.P99, r.PerSecond = sum.LatencyMS.P50, sum.LatencyMS.P99, sum.PerSecond

	var view struct {
		Accepted int `json:"orders_accepted"`
		InFlight int `json:"orders_in_flight"`
	}
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) { // the sale has no push for "all settled"
		if err := flashCall(ctx, http.MethodGet, base+"/api/v1/sales/"+sale.ID, "", nil, &view); err == nil && view.InFlight == 0 {
			r.SettledAfterS = time.Since(start).Seconds()
			break
		}
	}
	stopSampling()
	wg.Wait()
	r.PeakDBConns = peak
	var rec struct {
		Stock    int  `json:"stock"`
		Sold     int  `json:"sold"`
		Reserved int  `json:"reserved"`
		Left     int  `json:"left"`
		OK       bool `json:"ok"`
	}
	if err := flashCall(ctx, http.MethodGet, base+"/api/v1/sales/"+sale.ID+"/reconcile", token, nil, &rec); err != nil {
		return r, err
	}
	r.Oversold = max(0, rec.Sold+rec.Reserved-rec.Stock)
	if int64(o.Users) >= int64(o.Stock) && r.Failed == 0 {
		r.Unsold = rec.Left // every unit had a buyer: any left is unsold
	}
	r.Lost = max(0, int(r.Accepted)-view.Accepted)
	settleS := math.Max(r.SettledAfterS, o.Over.Seconds())
	if v.Processor == "functions" {
		var ps struct {
			Functions struct {
				Invocations int64   `json:"invocations"`
				ColdStarts  int64   `json:"cold_starts"`
				GBSeconds   float64 `json:"gb_seconds"`
			} `json:"functions"`
		}
		if err := flashCall(ctx, http.MethodGet, base+"/api/v1/processor", "", nil, &ps); err != nil {
			return r, err
		}
		r.ColdStarts, r.Invocations, r.GBSeconds = ps.Functions.ColdStarts, ps.Functions.Invocations, ps.Functions.GBSeconds
		r.CostUSD = float64(r.Invocations)/1e6*o.LambdaPerMillion + r.GBSeconds*o.LambdaGBSecond
	} else {
		// One always-on task (the API, which processes in sync mode or
		// hosts the workers), billed for the spike and its settling.
		r.CostUSD = settleS / 3600 * (o.WorkerVCPU*o.FargateVCPUHour + o.WorkerMemGB*o.FargateGBHour)
	}
	return r, nil
}

func flashCall(ctx context.Context, method, url, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = strings.NewReader(string(raw))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// flashSaleReport states the lesson from the figures.
func flashSaleReport(o FlashSaleOptions, rs []flashResult) *Report {
	r := &Report{Experiment: "flash-sale", System: "flashsale", Passed: true, Figures: map[string]float64{}}
	by := map[string]flashResult{}
	for _, x := range rs {
		by[x.Variant] = x
		k := strings.ReplaceAll(x.Variant, "+", "_") + "_"
		for name, v := range map[string]float64{"accepted": float64(x.Accepted), "accepted_per_s": x.AcceptedPerS, "refused": float64(x.Refused), "failed": float64(x.Failed),
			"p50_ms": x.P50, "p99_ms": x.P99, "settled_after_s": x.SettledAfterS, "peak_db_connections": x.PeakDBConns, "cold_starts": float64(x.ColdStarts),
			"oversold": float64(x.Oversold), "unsold": float64(x.Unsold), "lost": float64(x.Lost), "cost_usd": x.CostUSD} {
			r.Figures[k+name] = v
		}
		if x.Oversold > 0 || x.Unsold > 0 || x.Lost > 0 || x.SettledAfterS < 0 {
			r.Passed = false
			r.Lesson = append(r.Lesson, fmt.Sprintf("%s BROKE THE GUARANTEES: %d oversold, %d unsold, %d lost, settled after %.1f s.", x.Variant, x.Oversold, x.Unsold, x.Lost, x.SettledAfterS))
		}
	}
	sync, workers, functions := by["sync"], by["async+workers"], by["async+functions"]
	if r.Passed {
		r.Lesson = append(r.Lesson, fmt.Sprintf("All three sold exactly %d units to %d buyers: nothing oversold, nothing left unsold, every accepted order settled.", o.Stock, o.Users))
	}
	if sync.P99 > 0 && workers.P99 > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Sync answered every buyer only after the payment (%v) and in the order the sale's row lock let it: p50 %.1f ms, p99 %.1f ms. Async answered at admission: p50 %.1f ms, p99 %.1f ms (%.1f× faster at p99) — the payment happened after the answer.",
			o.PaymentLatency, sync.P50, sync.P99, workers.P50, workers.P99, sync.P99/workers.P99))
	}
	if sync.SettledAfterS > 0 && workers.SettledAfterS > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Time until every order was settled: sync %.1f s (it is the answer), async+workers %.1f s with %d workers, async+functions %.1f s with up to %d instances — the queue moves the wait from the buyer to the back office, it does not remove it.",
			sync.SettledAfterS, workers.SettledAfterS, o.Workers, functions.SettledAfterS, o.FunctionConc))
	}
	if sync.PeakDBConns > 0 && workers.PeakDBConns > 0 {
		if sync.PeakDBConns >= 1.5*workers.PeakDBConns {
			r.Lesson = append(r.Lesson, fmt.Sprintf("Peak database connections: sync %.0f, async+workers %.0f, async+functions %.0f: in sync mode each buyer past admission holds a connection while it waits for the sale's row and its payment.",
				sync.PeakDBConns, workers.PeakDBConns, functions.PeakDBConns))
		} else if o.DB == "" {
			r.Lesson = append(r.Lesson, fmt.Sprintf("Peak database connections: sync %.0f, async+workers %.0f, async+functions %.0f — about the same: SQLite admits one writer at a time, so every order queues for its writer slot rather than for a connection. Run it with --db postgres://… to see the pool.",
				sync.PeakDBConns, workers.PeakDBConns, functions.PeakDBConns))
		} else {
			r.Lesson = append(r.Lesson, fmt.Sprintf("Peak database connections: sync %.0f, async+workers %.0f, async+functions %.0f — each variant reached the connection pool's limit (32), so this figure does not tell them apart here; the wait to an answer above does.",
				sync.PeakDBConns, workers.PeakDBConns, functions.PeakDBConns))
		}
	}
	if functions.Invocations > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("The functions made %d cold starts (%v each) for %d invocations; billed %.3f GB-seconds: $%.6f, against $%.6f for one always-on worker task over the same spike (stated list prices: $%.2f per million invocations, $%.10f per GB-second; $%.5f per vCPU-hour, $%.6f per GB-hour). At this size both are fractions of a cent; the difference is what idle costs between sales.",
			functions.ColdStarts, o.ColdStart, functions.Invocations, functions.GBSeconds, functions.CostUSD, workers.CostUSD, o.LambdaPerMillion, o.LambdaGBSecond, o.FargateVCPUHour, o.FargateGBHour))
	}
	r.Lesson = append(r.Lesson, "What one 2-core machine can and cannot show: the load generator, the API, the broker, the database and the payment simulator share the cores, so absolute rates are this machine's; the ratios between the variants and the zeros are the lesson.")
	return r
}

func flashSalePlots(o FlashSaleOptions, rs []flashResult) map[string]string {
	var groups []string
	var p50, p99, settled []float64
	for _, x := range rs {
		groups = append(groups, x.Variant)
		p50, p99, settled = append(p50, x.P50), append(p99, x.P99), append(settled, math.Max(0, x.SettledAfterS))
	}
	return map[string]string{
		"answer-latency.svg": plot.Bars{Title: fmt.Sprintf("Time to an answer, %d buyers in %v", o.Users, o.Over), YLabel: "ms", Groups: groups,
			Series: []string{"p50", "p99"}, Values: [][]float64{p50, p99}}.SVG(),
		"settled-after.svg": plot.Bars{Title: "Time until every order settled", YLabel: "s", Groups: groups, Series: []string{"settled"}, Values: [][]float64{settled}}.SVG(),
	}
}
