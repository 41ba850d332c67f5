package cascade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/promscrape"
)

// Config is one experiment: the same traffic against the shop twice, with
// and without protection, while the payment service stalls.
type Config struct {
	Binary   string        // the scalelab binary that runs the shop
	Out      string        // report directory
	Duration time.Duration // per mode
	StallAt  time.Duration // payment stalls this long into the run…
	StallFor time.Duration // …for this long
	// Steady open-model load, requests per second.
	CatalogRate, CartRate, CheckoutRate float64
	PaymentLatency                      time.Duration                    // the downstream's normal latency
	MaxInFlight                         int                              // the shop's --max-in-flight, same in both modes
	Timeout                             time.Duration                    // the load generator gives up after this
	Logf                                func(format string, args ...any) `json:"-"`
}

// DefaultConfig is `scalelab experiment run cascade` without flags.
func DefaultConfig() Config {
	return Config{Duration: 45 * time.Second, StallAt: 10 * time.Second, StallFor: 15 * time.Second,
		CatalogRate: 200, CartRate: 50, CheckoutRate: 40, PaymentLatency: 10 * time.Millisecond,
		MaxInFlight: 256, Timeout: 10 * time.Second, Out: "cascade-report"}
}

// The traffic classes, in report order.
var classes = []string{"catalog", "carts", "checkout"}

// ModeResult is what one mode measured.
type ModeResult struct {
	Name      string                  `json:"name"`
	Protect   bool                    `json:"resilience"`
	Classes   map[string]*ClassResult `json:"classes"`
	Samples   []Sample                `json:"samples"` // the shop process, once a second
	PeakGoros int                     `json:"peak_goroutines"`
	PeakIn    int                     `json:"peak_in_flight"`
	// RecoveryS is how long after the payment healed checkouts were back
	// to normal (3 s in a row without errors at ≥ 80 % of the rate); -1 if
	// not within the run.
	RecoveryS  float64                `json:"recovery_s"`
	Downstream downstream.Stats       `json:"downstream"`
	Phases     map[string]PhaseResult `json:"phases"` // "class/phase"
}

// ClassResult is one traffic class's run.
type ClassResult struct {
	Requests  int64                 `json:"requests"`
	Errors    int64                 `json:"errors"`
	ByKind    map[string]int64      `json:"errors_by_kind"`
	ByClass   map[string]int64      `json:"by_status_class"`
	PerSecond []loadgen.SecondStats `json:"per_second"`
}

// PhaseResult summarises a class over before / during / after the stall.
type PhaseResult struct {
	OKPerS  float64 `json:"ok_per_s"`
	ErrPerS float64 `json:"errors_per_s"`
	P50     float64 `json:"median_p50_ms"` // median of the per-second p50s
	P99     float64 `json:"max_p99_ms"`    // worst per-second p99
}

// Sample is the shop process's state at one second.
type Sample struct {
	T          float64 `json:"t"`
	Goroutines int     `json:"goroutines"`
	InFlight   int     `json:"in_flight"`
}

// Run runs both modes and writes the report.
func Run(ctx context.Context, cfg Config) ([]*ModeResult, error) {
	if cfg.StallAt+cfg.StallFor >= cfg.Duration {
		return nil, fmt.Errorf("cascade: the stall (%s + %s) must end before the run (%s)", cfg.StallAt, cfg.StallFor, cfg.Duration)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	var results []*ModeResult
	for _, protect := range []bool{false, true} {
		r, err := runMode(ctx, cfg, protect)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, writeReport(cfg, results)
}

func runMode(ctx context.Context, cfg Config, protect bool) (*ModeResult, error) {
	name := map[bool]string{false: "resilience off", true: "resilience on"}[protect]
	cfg.Logf("== %s", name)
	down := downstream.New(1)
	for _, s := range []string{"inventory", "payment"} {
		if err := down.SetFaults(s, downstream.Faults{Latency: cfg.PaymentLatency}); err != nil {
			return nil, err
		}
	}
	downSrv := httpx.NewServer(httpx.ServerConfig{Addr: "127.0.0.1:0"}, down.Handler(nil), slog.New(slog.DiscardHandler))
	if err := downSrv.Listen(); err != nil {
		return nil, err
	}
	downCtx, stopDown := context.WithCancel(ctx)
	defer stopDown()
	go func() { _ = downSrv.Serve(downCtx) }()

	admin := auth.NewKeyText() // the experiment is the shop's operator: it seeds the catalog
	base, stopShop, err := startShop(ctx, cfg, protect, "http://"+downSrv.Addr(), admin)
	if err != nil {
		return nil, err
	}
	defer stopShop()
	products, carts, err := seed(ctx, base, admin, int(math.Ceil(cfg.CheckoutRate*cfg.Duration.Seconds()))+16)
	if err != nil {
		return nil, err
	}
	cfg.Logf("   seeded %d products and %d carts", len(products), len(carts))

	res := &ModeResult{Name: name, Protect: protect, Classes: map[string]*ClassResult{}, Phases: map[string]PhaseResult{}}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); res.Samples = sample(runCtx, base, start) }()
	go func() {
		defer wg.Done()
		stall(runCtx, down, cfg, start)
	}()

	plans := map[string]loadgen.Plan{
		"catalog": {HTTP: &loadgen.HTTPTarget{URL: base + "/api/v1/products?category=cat{{rand 1 20}}&limit=10"},
			Rate: cfg.CatalogRate, Connections: 256},
		"carts": {HTTP: &loadgen.HTTPTarget{URL: base + "/api/v1/carts", Method: "POST"},
			Rate: cfg.CartRate, Connections: 128},
		"checkout": {HTTP: &loadgen.HTTPTarget{URL: base + "/api/v1/carts/{{value}}/checkout", Method: "POST",
			Headers: []string{"Idempotency-Key: cascade-{{value}}"}, Values: carts},
			Rate: cfg.CheckoutRate, Connections: 1000},
	}
	var mu sync.Mutex
	var errs []error
	var lg sync.WaitGroup
	for class, p := range plans {
		p.Duration, p.Timeout, p.Seed = cfg.Duration, cfg.Timeout, 1
		p.Deadline = cfg.Duration + cfg.Timeout + 10*time.Second
		lg.Add(1)
		go func() {
			defer lg.Done()
			r, err := loadgen.Run(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s load: %w", class, err))
				return
			}
			res.Classes[class] = &ClassResult{Requests: r.Requests, Errors: r.Errors, ByKind: r.ByKind, ByClass: r.ByClass,
				PerSecond: r.PerSecond}
		}()
	}
	lg.Wait()
	stopRun()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, s := range res.Samples {
		res.PeakGoros, res.PeakIn = max(res.PeakGoros, s.Goroutines), max(res.PeakIn, s.InFlight)
	}
	res.Downstream = down.Stats()
	summarise(res, cfg)
	cfg.Logf("   checkout: %d requests, %d errors; peak goroutines %d; recovery %.0f s", res.Classes["checkout"].Requests,
		res.Classes["checkout"].Errors, res.PeakGoros, res.RecoveryS)
	return res, nil
}

// startShop runs `scalelab shop serve` as its own process, so that its
// goroutines and memory are its own, and waits until it is ready.
func startShop(ctx context.Context, cfg Config, protect bool, downstream, admin string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "scalelab-cascade-")
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logFile, err := os.Create(filepath.Join(dir, "shop.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(cfg.Binary, "shop", "serve", "--addr", addr, "--data", dir, "--downstream", downstream,
		"--resilience="+strconv.FormatBool(protect), "--admin-token", admin, "--max-in-flight", strconv.Itoa(cfg.MaxInFlight), "--reconcile-every", "0")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("cascade: start the shop: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		os.RemoveAll(dir)
	}
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, stop, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("cascade: the shop at %s did not become ready", base)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seed creates 20 products (one per category, stock that never runs out)
// and n carts holding one of them each, 16 at a time.
func seed(ctx context.Context, base, admin string, n int) ([]string, []string, error) {
	post := func(path, body string, out any) error {
		req, err := http.NewRequestWithContext(ctx, "POST", base+path, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, data)
		}
		if out != nil {
			return json.Unmarshal(data, out)
		}
		return nil
	}
	products := make([]string, 20)
	for i := range products {
		var p struct {
			ProductID string `json:"productId"`
		}
		if err := post("/api/v1/products", fmt.Sprintf(`{"name":"Cascade product %d","category":"cat%d","price_cents":%d,"stock":1000000000}`, i+1, i+1, 100*(i+1)), &p); err != nil {
			return nil, nil, err
		}
		products[i] = p.ProductID
	}
	carts := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var c struct {
					CartID string `json:"cartId"`
				}
				err := post("/api/v1/carts", "", &c)
				if err == nil {
					err = post("/api/v1/carts/"+c.CartID+"/items", fmt.Sprintf(`{"productId":"%s","quantity":1}`, products[i%len(products)]), nil)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				carts[i] = c.CartID
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return products, carts, firstErr
}

// stall makes the payment service hang from StallAt to StallAt+StallFor.
func stall(ctx context.Context, down *downstream.Simulator, cfg Config, start time.Time) {
	set := func(stalled bool) {
		f := down.Faults("payment")
		f.Stalled = stalled
		_ = down.SetFaults("payment", f)
	}
	defer set(false)
	for _, step := range []struct {
		at      time.Duration
		stalled bool
	}{{cfg.StallAt, true}, {cfg.StallAt + cfg.StallFor, false}} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(step.at))):
		}
		cfg.Logf("   %5.1fs payment stalled=%v", time.Since(start).Seconds(), step.stalled)
		set(step.stalled)
	}
}

// sample reads the shop's goroutines and requests in flight from its
// /metrics once a second.
func sample(ctx context.Context, base string, start time.Time) []Sample {
	var out []Sample
	client := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		m, err := promscrape.Scrape(ctx, client, base+"/metrics")
		if err != nil {
			continue
		}
		s := Sample{T: math.Round(time.Since(start).Seconds())}
		if v, ok := m.Value("go_goroutines"); ok {
			s.Goroutines = int(v)
		}
		if v, ok := m.Value("scalelab_shop_in_flight"); ok {
			s.InFlight = int(v)
		}
		out = append(out, s)
	}
}
