package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/lb"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/platform/plot"
)

// The lb-algorithms experiment: four backends, one degraded (+Delay on
// every answer); every load-aware policy of scalelab lb at the same
// open-model load, and, when they are installed, HAProxy's and nginx's
// own policies over the same backends. The hashing policies are left
// out: with one client they send everything to one backend by design.

// LBAlgorithmsOptions shape one run.
type LBAlgorithmsOptions struct {
	Duration time.Duration // per policy
	Rate     float64       // requests/s
	Service  time.Duration // every backend's normal answer time
	Delay    time.Duration // the degraded backend's extra time
}

type lbRun struct {
	Name      string
	Requests  int64
	Errors    int64
	P50, P99  float64 // ms
	Degraded  float64 // the degraded backend's share of the requests
	MinShare  float64 // the least-used healthy backend's share, against a fair 1/3 of the healthy share
	Available bool
}

var lbPolicies = []string{"round-robin", "weighted", "least-conn", "random", "p2c", "peak-ewma"}

func lbAlgorithmsExperiment() Experiment {
	return Experiment{
		Name: "lb-algorithms", System: "lb",
		Summary: "Four backends, one 50 ms slower: each balancing policy (and HAProxy's and nginx's, when installed) at the same load — p99, errors, and how much traffic the slow one still gets",
		Quick:   map[string]string{"duration": "3s"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := LBAlgorithmsOptions{Duration: 10 * time.Second, Rate: 400, Service: 2 * time.Millisecond, Delay: 50 * time.Millisecond}
			fs.DurationVar(&opts.Duration, "duration", opts.Duration, "load per policy")
			fs.Float64Var(&opts.Rate, "rate", opts.Rate, "requests per second (open model)")
			fs.DurationVar(&opts.Service, "service", opts.Service, "every backend's normal answer time")
			fs.DurationVar(&opts.Delay, "delay", opts.Delay, "the degraded backend's extra time")
			return func(ctx context.Context, env Env) (*Report, error) { return runLBAlgorithms(ctx, env, opts) }
		},
	}
}

// slowBackends are four HTTP servers; the last is degraded.
type slowBackends struct {
	urls []string
	hits [4]atomic.Int64
	srvs []*http.Server
}

func startSlowBackends(opts LBAlgorithmsOptions) (*slowBackends, error) {
	sb := &slowBackends{}
	for i := 0; i < 4; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			sb.close()
			return nil, err
		}
		d := opts.Service
		if i == 3 {
			d += opts.Delay
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				return
			}
			sb.hits[i].Add(1)
			time.Sleep(d) // the service time the experiment is about
			_, _ = w.Write([]byte("ok"))
		})}
		go func() { _ = srv.Serve(l) }()
		sb.srvs = append(sb.srvs, srv)
		sb.urls = append(sb.urls, "http://"+l.Addr().String())
	}
	return sb, nil
}

func (sb *slowBackends) close() {
	for _, s := range sb.srvs {
		_ = s.Close()
	}
}

func (sb *slowBackends) reset() [4]int64 {
	var out [4]int64
	for i := range sb.hits {
		out[i] = sb.hits[i].Swap(0)
	}
	return out
}

func runLBAlgorithms(ctx context.Context, env Env, opts LBAlgorithmsOptions) (*Report, error) {
	if opts.Duration < time.Second || opts.Rate <= 0 || opts.Rate > 5000 || opts.Delay < 0 || opts.Service < 0 {
		return nil, apperr.Usagef("want --duration ≥ 1s, 0 < --rate ≤ 5000, --delay and --service ≥ 0")
	}
	sb, err := startSlowBackends(opts)
	if err != nil {
		return nil, err
	}
	defer sb.close()
	var runs []lbRun
	for _, policy := range lbPolicies {
		url, stop, err := startScalelabLB(policy, sb.urls)
		if err != nil {
			return nil, err
		}
		run, err := driveLB(ctx, "scalelab "+policy, url, sb, opts)
		stop()
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
		printLBRun(env, run)
	}
	for _, anchor := range anchorProxies(env.Dir, sb.urls) {
		url, stop, err := anchor.start()
		if err != nil {
			fmt.Fprintf(env.Log, "%-26s not run: %v\n", anchor.name, err)
			runs = append(runs, lbRun{Name: anchor.name})
			continue
		}
		run, err := driveLB(ctx, anchor.name, url, sb, opts)
		stop()
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
		printLBRun(env, run)
	}
	r := lbAlgorithmsReport(opts, runs)
	r.Plots = lbAlgorithmsPlots(runs)
	var b strings.Builder
	fmt.Fprintf(&b, "# Balancing policies against one degraded backend\n\nFour backends answering in %v, the fourth in %v more; %.0f requests/s for %v per policy (open model).\n\n", opts.Service, opts.Delay, opts.Rate, opts.Duration)
	b.WriteString("| policy | requests | errors | p50 ms | p99 ms | the slow backend's share | least-used healthy backend (of its fair share) |\n|---|---|---|---|---|---|---|\n")
	for _, run := range runs {
		if !run.Available {
			fmt.Fprintf(&b, "| %s | not installed | | | | | |\n", run.Name)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f | %.2f | %.1f %% | %.2f |\n", run.Name, run.Requests, run.Errors, run.P50, run.P99, 100*run.Degraded, run.MinShare)
	}
	b.WriteString("\n" + lessonMarkdown(r))
	r.Body = b.String()
	return r, nil
}

func printLBRun(env Env, run lbRun) {
	fmt.Fprintf(env.Log, "%-26s %6d requests, %3d errors, p50 %7.2f ms, p99 %7.2f ms, slow backend %5.1f %%, least-used healthy %.2f of fair\n",
		run.Name, run.Requests, run.Errors, run.P50, run.P99, 100*run.Degraded, run.MinShare)
}

func startScalelabLB(policy string, backends []string) (string, func(), error) {
	pcfg, xcfg := lb.DefaultPoolConfig(), lb.DefaultProxyConfig()
	pcfg.Policy = policy
	tok, _ := auth.NewAdminToken(auth.NewKeyText())
	bal, err := lb.New(pcfg, xcfg, tok, backends)
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: bal.Proxy, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	go bal.Pool.RunChecks(ctx)
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { cancel(); _ = srv.Close() }, nil
}

// driveLB sends the open-model load through url and reads what each
// backend got.
func driveLB(ctx context.Context, name, url string, sb *slowBackends, opts LBAlgorithmsOptions) (lbRun, error) {
	sb.reset()
	res, err := loadgen.Run(ctx, loadgen.Plan{HTTP: &loadgen.HTTPTarget{URL: url + "/", Method: http.MethodGet}, Rate: opts.Rate, Duration: opts.Duration, Connections: 256})
	if err != nil {
		return lbRun{}, fmt.Errorf("lb-algorithms: %s: %w", name, err)
	}
	sum, err := loadgen.Summarize(res)
	if err != nil {
		return lbRun{}, err
	}
	hits := sb.reset()
	total := float64(hits[0] + hits[1] + hits[2] + hits[3])
	run := lbRun{Name: name, Requests: sum.Requests, Errors: sum.Errors, P50: sum.LatencyMS.P50, P99: sum.LatencyMS.P99, Available: true}
	if total > 0 {
		run.Degraded = float64(hits[3]) / total
		healthy := float64(hits[0] + hits[1] + hits[2])
		least := min(hits[0], hits[1], hits[2])
		if healthy > 0 {
			run.MinShare = float64(least) / (healthy / 3)
		}
	}
	return run, nil
}

// anchor is another proxy run over the same backends.
type anchor struct {
	name  string
	start func() (string, func(), error)
}

func anchorProxies(dir string, backends []string) []anchor {
	hosts := make([]string, len(backends))
	for i, u := range backends {
		hosts[i] = strings.TrimPrefix(u, "http://")
	}
	var out []anchor
	for _, algo := range []string{"roundrobin", "leastconn", "random(2)"} {
		out = append(out, anchor{name: "haproxy " + algo, start: func() (string, func(), error) { return startHAProxy(dir, algo, hosts) }})
	}
	for _, algo := range []string{"", "least_conn"} {
		name := "nginx round robin"
		if algo != "" {
			name = "nginx " + algo
		}
		out = append(out, anchor{name: name, start: func() (string, func(), error) { return startNginx(dir, algo, hosts) }})
	}
	return out
}

func freeLocalAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitAnswer(url string) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond) // a proxy starting has no signal but its port
	}
	return fmt.Errorf("%s did not answer", url)
}

func startHAProxy(dir, algo string, hosts []string) (string, func(), error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return "", nil, fmt.Errorf("haproxy is not installed (apt-get install haproxy)")
	}
	addr, err := freeLocalAddr()
	if err != nil {
		return "", nil, err
	}
	var servers strings.Builder
	for i, h := range hosts {
		fmt.Fprintf(&servers, "    server b%d %s\n", i, h)
	}
	cfg := fmt.Sprintf("global\n    nbthread 2\n    maxconn 4000\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"+
		"frontend fe\n    bind %s\n    default_backend be\nbackend be\n    balance %s\n    http-reuse safe\n%s", addr, algo, servers.String())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-f", path)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	if err := waitAnswer("http://" + addr + "/"); err != nil {
		stop()
		return "", nil, err
	}
	return "http://" + addr, stop, nil
}

func startNginx(dir, algo string, hosts []string) (string, func(), error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return "", nil, fmt.Errorf("nginx is not installed (apt-get install nginx-light)")
	}
	addr, err := freeLocalAddr()
	if err != nil {
		return "", nil, err
	}
	work := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(work, "tmp"), 0o755); err != nil {
		return "", nil, err
	}
	var servers strings.Builder
	if algo != "" {
		servers.WriteString("        " + algo + ";\n")
	}
	for _, h := range hosts {
		fmt.Fprintf(&servers, "        server %s;\n", h)
	}
	tmp := filepath.Join(work, "tmp")
	cfg := fmt.Sprintf("worker_processes 2;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\nevents { worker_connections 4096; }\nhttp {\n    access_log off;\n"+
		"    client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n"+
		"    upstream be {\n%s        keepalive 64;\n    }\n    server { listen %s; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }\n}\n",
		work, work, tmp, tmp, tmp, tmp, tmp, servers.String(), addr)
	path := filepath.Join(work, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	// In the foreground, as a child: killed with the experiment, never
	// left behind as a daemon.
	cmd := exec.Command(bin, "-p", work, "-c", path, "-g", "daemon off;")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("nginx: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	if err := waitAnswer("http://" + addr + "/"); err != nil {
		stop()
		return "", nil, err
	}
	return "http://" + addr, stop, nil
}

// lbAlgorithmsReport states the lesson from the figures.
func lbAlgorithmsReport(opts LBAlgorithmsOptions, runs []lbRun) *Report {
	r := &Report{Experiment: "lb-algorithms", System: "lb", Passed: true, Figures: map[string]float64{}}
	var measured []lbRun
	for _, run := range runs {
		if !run.Available {
			continue
		}
		measured = append(measured, run)
		key := figureName(run.Name)
		r.Figures[key+"_p99_ms"], r.Figures[key+"_p50_ms"] = run.P99, run.P50
		r.Figures[key+"_slow_share"], r.Figures[key+"_errors"] = run.Degraded, float64(run.Errors)
		r.Figures[key+"_least_healthy_of_fair"] = run.MinShare
		if run.Errors > run.Requests/100 {
			r.Passed = false
			r.Lesson = append(r.Lesson, fmt.Sprintf("%s: %d errors of %d requests — a balancer over four live backends should lose none.", run.Name, run.Errors, run.Requests))
		}
		if run.MinShare < 0.5 {
			r.Lesson = append(r.Lesson, fmt.Sprintf("%s starved a healthy backend: the least used got %.2f of its fair share.", run.Name, run.MinShare))
		}
	}
	find := func(name string) (lbRun, bool) {
		for _, run := range measured {
			if run.Name == name {
				return run, true
			}
		}
		return lbRun{}, false
	}
	rr, okRR := find("scalelab round-robin")
	pe, okPE := find("scalelab peak-ewma")
	if okRR && okPE {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Round robin is blind to latency: it sent the %v-slower backend %.1f %% of the traffic (a quarter, by construction), and its p99 (%.1f ms) is that backend's answer time. Peak-EWMA sent it %.1f %%, with a p99 of %.1f ms.",
			opts.Delay, 100*rr.Degraded, rr.P99, 100*pe.Degraded, pe.P99))
	}
	sorted := append([]lbRun(nil), measured...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].P99 < sorted[j].P99 })
	if len(sorted) > 0 {
		best := sorted[0]
		r.Lesson = append(r.Lesson, fmt.Sprintf("The lowest p99 was %s's (%.1f ms, the slow backend at %.1f %%); the highest %s's (%.1f ms).",
			best.Name, best.P99, 100*best.Degraded, sorted[len(sorted)-1].Name, sorted[len(sorted)-1].P99))
	}
	for _, name := range []string{"haproxy roundrobin", "haproxy leastconn"} {
		if h, ok := find(name); ok && okPE {
			r.Lesson = append(r.Lesson, fmt.Sprintf("Against %s (p99 %.1f ms, slow backend %.1f %%): scalelab peak-EWMA's p99 is %.2f× it.", name, h.P99, 100*h.Degraded, pe.P99/max(h.P99, 0.001)))
		}
	}
	if !okRR || len(measured) < len(lbPolicies) {
		r.Lesson = append(r.Lesson, "Some policies did not run: the comparison is partial.")
	}
	return r
}

func figureName(s string) string {
	return strings.NewReplacer(" ", "_", "-", "_", "(", "", ")", "").Replace(s)
}

func lbAlgorithmsPlots(runs []lbRun) map[string]string {
	var groups []string
	var p99, share []float64
	for _, run := range runs {
		if run.Available {
			groups = append(groups, strings.TrimPrefix(run.Name, "scalelab "))
			p99, share = append(p99, run.P99), append(share, 100*run.Degraded)
		}
	}
	return map[string]string{
		"p99.svg":        plot.Bars{Title: "p99 latency with one backend degraded", YLabel: "ms", Groups: groups, Series: []string{"p99"}, Values: [][]float64{p99}}.SVG(),
		"slow-share.svg": plot.Bars{Title: "Share of requests sent to the degraded backend", YLabel: "%", Groups: groups, Series: []string{"share"}, Values: [][]float64{share}}.SVG(),
	}
}
