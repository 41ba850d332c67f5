// Command openloop sends GET requests at a fixed rate, whatever the server
// does, and reports latency measured from each request's intended start
// (the coordinated-omission correction wrk2 makes), except that its own
// timer lateness is not charged to the server. bench/shortener.sh uses
// it for "p99 at half of the peak rate", because Debian has wrk but not
// wrk2. It is deliberately small; `scalelab load` (internal/loadgen) is the
// full load generator.
//
//	openloop -rate 20000 -duration 10s -conns 64 -paths codes.txt http://127.0.0.1:8082
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	rate := flag.Int("rate", 1000, "requests per second")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	conns := flag.Int("conns", 64, "concurrent connections (and in-flight requests)")
	pathsFile := flag.String("paths", "", "file with one request path per line (default: /)")
	flag.Parse()
	if flag.NArg() != 1 || *rate <= 0 || *duration <= 0 || *conns <= 0 {
		fmt.Fprintln(os.Stderr, "usage: openloop -rate N -duration D -conns C [-paths FILE] BASE_URL")
		os.Exit(2)
	}
	base := strings.TrimRight(flag.Arg(0), "/")
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	if h, _, err := net.SplitHostPort(host); err != nil || !net.ParseIP(h).IsLoopback() {
		fmt.Fprintln(os.Stderr, "openloop: only loopback targets (127.0.0.0/8, [::1]) are allowed")
		os.Exit(2)
	}
	paths := []string{"/"}
	if *pathsFile != "" {
		paths = readLines(*pathsFile)
	}

	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	total := int(float64(*rate) * duration.Seconds())
	interval := time.Second / time.Duration(*rate)
	latencies := make([]time.Duration, total)
	var errs, non3xx atomic.Int64
	type job struct {
		i    int
		from time.Time
	}
	work := make(chan job, total)
	start := time.Now().Add(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), *duration+30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				i := j.i
				req, _ := http.NewRequestWithContext(ctx, "GET", base+paths[i%len(paths)], nil)
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 3 && resp.StatusCode != 200 {
						non3xx.Add(1)
					}
				}
				latencies[i] = time.Since(j.from)
			}
		}()
	}
	// The scheduler releases request i at its intended time; if every
	// connection is busy, the request waits in the channel and that wait
	// counts in its latency. When the scheduler itself had to sleep, the
	// clock starts when it woke: timer lateness is the client's, not the
	// server's (the same rule as scalelab load).
	for i := 0; i < total; i++ {
		from := start.Add(time.Duration(i) * interval)
		if d := time.Until(from); d > 0 {
			time.Sleep(d)
			from = time.Now()
		}
		work <- job{i: i, from: from}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)

	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	fmt.Printf("requests=%d achieved_rps=%.0f errors=%d bad_status=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
		total, float64(total)/elapsed.Seconds(), errs.Load(), non3xx.Load(),
		pct(0.50), pct(0.90), pct(0.99), pct(0.999), float64(latencies[len(latencies)-1].Microseconds())/1000)
}

func readLines(name string) []string {
	f, err := os.Open(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openloop:", err)
		os.Exit(2)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		fmt.Fprintln(os.Stderr, "openloop: no paths in", name)
		os.Exit(2)
	}
	return out
}
