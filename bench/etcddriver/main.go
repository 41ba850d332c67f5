// Command etcddriver drives etcd the way its users do: through clientv3,
// its Go client over gRPC (not the JSON gateway), in a closed loop, the way
// etcd's own `benchmark put|range` tool does. bench/dynamo.sh runs it as
// the anchor's load, side by side with `scalelab load` against dynamo;
// bench/raftkv.sh runs it against both etcd and raftkv (which serves
// etcd's API), so one driver measures both.
//
//	etcddriver -endpoints 127.0.0.1:23791,… -clients 64 -conns 3 -op put -duration 10s
//
// Output (one line): ops/s p99_ms requests ok errors
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated member client addresses")
	clients := flag.Int("clients", 64, "concurrent requesters (closed model)")
	conns := flag.Int("conns", 3, "gRPC connections (clientv3 clients) the requesters share")
	op := flag.String("op", "put", "put (fresh keys), get (linearizable range of a preloaded key) or preload")
	duration := flag.Duration("duration", 10*time.Second, "how long to run (put, get)")
	keys := flag.Int("keys", 100000, "preloaded keys key00000000…")
	valueSize := flag.Int("value-size", 256, "bytes per value")
	serializable := flag.Bool("serializable", false, "get: serializable reads (the member's own state, no quorum round)")
	flag.Parse()
	if err := run(*endpoints, *clients, *conns, *op, *duration, *keys, *valueSize, *serializable); err != nil {
		fmt.Fprintln(os.Stderr, "etcddriver:", err)
		os.Exit(1)
	}
}

func run(endpoints string, clients, conns int, op string, duration time.Duration, keys, valueSize int, serializable bool) error {
	if clients < 1 || conns < 1 || keys < 1 || valueSize < 0 {
		return errors.New("want -clients, -conns, -keys ≥ 1")
	}
	eps := strings.Split(endpoints, ",")
	var cs []*clientv3.Client
	for i := 0; i < conns; i++ {
		// One endpoint per connection, round robin, as requests to a
		// cluster spread over its members.
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{eps[i%len(eps)]}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		defer c.Close()
		cs = append(cs, c)
	}
	value := strings.Repeat("v", valueSize)
	key := func(i int) string { return fmt.Sprintf("key%08d", i) }
	ctx := context.Background()
	var next atomic.Int64
	var ok, failed atomic.Int64
	var mu sync.Mutex
	lat := hdr.New(1, 60_000_000, 3) // µs
	deadline := time.Now().Add(duration)
	work := func(w int, c *clientv3.Client) {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
		local := hdr.New(1, 60_000_000, 3)
		for {
			var err error
			start := time.Now()
			switch op {
			case "preload":
				i := int(next.Add(1)) - 1
				if i >= keys {
					goto done
				}
				_, err = c.Put(ctx, key(i), value)
			case "put":
				if start.After(deadline) {
					goto done
				}
				_, err = c.Put(ctx, fmt.Sprintf("new%08d", rng.IntN(100_000_000)), value)
			case "get":
				if start.After(deadline) {
					goto done
				}
				var resp *clientv3.GetResponse
				if serializable {
					resp, err = c.Get(ctx, key(rng.IntN(keys)), clientv3.WithSerializable())
				} else {
					resp, err = c.Get(ctx, key(rng.IntN(keys)))
				}
				if err == nil && len(resp.Kvs) != 1 {
					err = errors.New("preloaded key not found")
				}
			}
			if err != nil {
				failed.Add(1)
				continue
			}
			ok.Add(1)
			_ = local.RecordValue(max(time.Since(start).Microseconds(), 1))
		}
	done:
		mu.Lock()
		lat.Merge(local)
		mu.Unlock()
	}
	switch op {
	case "put", "get", "preload":
	default:
		return fmt.Errorf("-op %q: want put, get or preload", op)
	}
	begin := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) { defer wg.Done(); work(w, cs[w%len(cs)]) }(w)
	}
	wg.Wait()
	elapsed := time.Since(begin)
	n := ok.Load() + failed.Load()
	fmt.Printf("%.0f %.2f %d %d %d\n", float64(ok.Load())/elapsed.Seconds(), float64(lat.ValueAtQuantile(99))/1000, n, ok.Load(), failed.Load())
	return nil
}
