package dynamo

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/dynamo/store"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
)

// CAPOptions shape the CAP experiment.
type CAPOptions struct {
	Duration time.Duration // whole run: a third healthy, a third partitioned, a third healed
	Keys     int
	W        int
}

// CAPResult is what the experiment measured.
type CAPResult struct {
	Phases       [3]PhaseStats
	KeysWithSibs int
	MaxSiblings  int
	AckedWrites  int
	LostWrites   int
	// SibsAfterRepair are the keys that held siblings once repair had run
	// and before the last read-and-resolve: versions the clients never
	// read (held as hints, or on the replica an R=2 read skipped).
	SibsAfterRepair int
	HintsStored     uint64
	HintsHandedOn   uint64
}

// PhaseStats counts one phase's writes.
type PhaseStats struct {
	Name           string
	Attempts, Acks int
	SiblingReads   int // reads that returned more than one version
}

// RunCAP runs the CAP experiment on a 5-node in-process cluster (N=3,
// R=2, W=opts.W): two clients keep doing read-modify-writes on the same
// keys, one through n1 and one through n4; in the middle third of the run
// the network splits {n1,n2} | {n3,n4,n5}. Dynamo chooses availability:
// both sides keep acknowledging writes (sloppy quorum, hints), the two
// sides' writes to one key are concurrent, and after the heal every
// replica holds them as siblings instead of one silently winning.
func RunCAP(ctx context.Context, w io.Writer, opts CAPOptions) (CAPResult, error) {
	dir, err := os.MkdirTemp("", "scalelab-dynamo-cap-")
	if err != nil {
		return CAPResult{}, err
	}
	defer os.RemoveAll(dir)
	names := []string{"n1", "n2", "n3", "n4", "n5"}
	net := NewNetwork(1)
	members := NewStatic(names...)
	nodes := map[string]*Node{}
	for _, name := range names {
		cfg := DefaultConfig()
		cfg.ID, cfg.DataDir, cfg.Sync = name, dir+"/"+name, store.SyncBatch
		cfg.VNodes, cfg.RequestTimeout, cfg.FailureBackoff = 32, 100*time.Millisecond, 200*time.Millisecond
		cfg.HintInterval, cfg.SyncInterval = time.Hour, time.Hour // driven below
		n, err := Open(cfg, members, net.Transport(name))
		if err != nil {
			return CAPResult{}, err
		}
		defer n.Close()
		net.Attach(name, n.Handle)
		nodes[name] = n
	}
	var res CAPResult
	res.Phases = [3]PhaseStats{{Name: "healthy"}, {Name: "partitioned {n1,n2} | {n3,n4,n5}"}, {Name: "healed"}}
	type write struct {
		key, value string
		seen       []string
		acked      bool
	}
	var mu sync.Mutex
	var writes []write
	phase := 0
	start := time.Now()
	stop := start.Add(opts.Duration)
	var wg sync.WaitGroup
	for c, via := range []string{"n1", "n4"} {
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			// The two clients walk the keys half a lap apart, so that when
			// the network is whole their writes to one key are sequential.
			for i := c * opts.Keys / 2; time.Now().Before(stop) && ctx.Err() == nil; i++ {
				key := fmt.Sprint("cart-", i%opts.Keys)
				wr := write{key: key, value: fmt.Sprintf("%s-%d", n.ID(), i)}
				var causal vclock.Clock
				siblings := false
				if vs, err := n.Get(ctx, []byte(key), 2); err == nil {
					causal = vclock.Context(vs)
					siblings = len(vs) > 1
					for _, v := range vs {
						wr.seen = append(wr.seen, string(v.Value))
					}
				}
				_, err := n.Put(ctx, []byte(key), WriteRequest{Context: causal, Value: []byte(wr.value), W: opts.W})
				wr.acked = err == nil
				mu.Lock()
				res.Phases[phase].Attempts++
				if siblings {
					res.Phases[phase].SiblingReads++
				}
				if wr.acked {
					res.Phases[phase].Acks++
				}
				writes = append(writes, wr)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}(nodes[via])
	}
	third := opts.Duration / 3
	fmt.Fprintf(w, "5 nodes, N=3 R=2 W=%d, %d keys, clients writing through n1 and n4 for %v\n", opts.W, opts.Keys, opts.Duration)
	time.Sleep(time.Until(start.Add(third)))
	mu.Lock()
	phase = 1
	net.Partition([]string{"n1", "n2"}, []string{"n3", "n4", "n5"})
	mu.Unlock()
	fmt.Fprintf(w, "%6.1fs partition {n1,n2} | {n3,n4,n5}\n", time.Since(start).Seconds())
	time.Sleep(time.Until(start.Add(2 * third)))
	mu.Lock()
	phase = 2
	net.Heal()
	mu.Unlock()
	fmt.Fprintf(w, "%6.1fs healed\n", time.Since(start).Seconds())
	wg.Wait()

	// Let the repair mechanisms run: hinted hand-off, then anti-entropy.
	for _, name := range names {
		nodes[name].bg.Wait() // requests sent before the heal have finished
	}
	for _, name := range names {
		nodes[name].detector.forgive() // as if every detector's backoff had run out
	}
	for round := 0; round < 3; round++ {
		for _, name := range names {
			nodes[name].deliverHints(ctx)
		}
		for _, name := range names {
			_ = nodes[name].SyncOnce(ctx)
		}
	}
	for _, name := range names {
		st := nodes[name].metrics.snapshot()
		res.HintsStored += st.HintsStored
		res.HintsHandedOn += st.HintsDelivered
	}
	// The clients' last step: read every key from all three replicas and
	// resolve what repair brought back. Siblings here are not a failure —
	// they are versions no client had read yet — but they must resolve.
	for k := 0; k < opts.Keys; k++ {
		key := fmt.Sprint("cart-", k)
		vs, err := nodes["n3"].Get(ctx, []byte(key), 3)
		if err != nil {
			return res, fmt.Errorf("resolving read of %s: %w", key, err)
		}
		if len(vs) < 2 {
			continue
		}
		res.SibsAfterRepair++
		wr := write{key: key, value: "resolved-" + key}
		for _, v := range vs {
			wr.seen = append(wr.seen, string(v.Value))
		}
		_, err = nodes["n3"].Put(ctx, []byte(key), WriteRequest{Context: vclock.Context(vs), Value: []byte(wr.value), W: 3})
		wr.acked = err == nil
		writes = append(writes, wr)
		if err != nil {
			return res, fmt.Errorf("resolving write of %s: %w", key, err)
		}
	}
	final := map[string][]string{}
	for k := 0; k < opts.Keys; k++ {
		key := fmt.Sprint("cart-", k)
		vs, err := nodes["n3"].Get(ctx, []byte(key), 3)
		if err != nil {
			return res, fmt.Errorf("final read of %s: %w", key, err)
		}
		for _, v := range vs {
			final[key] = append(final[key], string(v.Value))
		}
		if len(vs) > 1 {
			res.KeysWithSibs++
		}
		res.MaxSiblings = max(res.MaxSiblings, len(vs))
	}
	for _, wr := range writes {
		if !wr.acked {
			continue
		}
		res.AckedWrites++
		if slices.Contains(final[wr.key], wr.value) {
			continue
		}
		replaced := false
		for _, later := range writes {
			if later.key == wr.key && slices.Contains(later.seen, wr.value) {
				replaced = true
				break
			}
		}
		if !replaced {
			res.LostWrites++
		}
	}
	fmt.Fprintf(w, "\n%-36s %9s %9s %13s %14s\n", "phase", "writes", "acked", "availability", "sibling reads")
	for _, p := range res.Phases {
		avail := 0.0
		if p.Attempts > 0 {
			avail = 100 * float64(p.Acks) / float64(p.Attempts)
		}
		fmt.Fprintf(w, "%-36s %9d %9d %12.1f%% %14d\n", p.Name, p.Attempts, p.Acks, avail, p.SiblingReads)
	}
	fmt.Fprintf(w, "\nhints stored %d, handed off %d\n", res.HintsStored, res.HintsHandedOn)
	fmt.Fprintf(w, "after the heal, reads returned the two sides' writes as siblings %d times, and the clients wrote back\n", res.Phases[2].SiblingReads)
	if res.SibsAfterRepair > 0 {
		fmt.Fprintf(w, "with the merged context. Repair then brought back versions no client had read (hints, the replica an\n")
		fmt.Fprintf(w, "R=2 read skipped): %d of %d keys held siblings; one more read at R=3 and write-back resolved them.\n", res.SibsAfterRepair, opts.Keys)
	} else {
		fmt.Fprintf(w, "with the merged context; repair brought back no version a client had not read.\n")
	}
	fmt.Fprintf(w, "At the end %d of %d keys hold siblings.\n", res.KeysWithSibs, opts.Keys)
	fmt.Fprintf(w, "acknowledged writes: %d, lost: %d\n", res.AckedWrites, res.LostWrites)
	if res.KeysWithSibs > 0 {
		// The report would contradict itself: a write back with the
		// context of an R=3 read replaces every version it read.
		return res, fmt.Errorf("dynamo cap: %d keys still hold siblings after a write-back with the merged context", res.KeysWithSibs)
	}
	return res, nil
}
