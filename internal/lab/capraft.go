package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/raftkv"
)

// raftSide is what one client of the raftkv half of the CAP experiment saw
// in one phase.
type raftSide struct {
	Attempts, Acks int
	// Late are writes begun in this phase and acknowledged in a later one:
	// a minority write that was still waiting when the heal came commits
	// then (as it should); it was not acknowledged during the partition.
	Late int
}

// raftCAP is the raftkv half: the same shape as dynamo's run — five nodes,
// a client on each side of {1,2} | {3,4,5}, a third of the run healthy, a
// third partitioned, a third healed.
type raftCAP struct {
	Minority, Majority [3]raftSide // by phase
	Linearizable       bool        // every read after the heal saw the last acknowledged write of its key
}

func runRaftCAP(ctx context.Context, dir string, d time.Duration) (raftCAP, error) {
	var res raftCAP
	tmp, err := os.MkdirTemp(dir, "raftkv-cap-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	c, err := raftkv.NewLocalCluster(tmp, 5, &host.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return res, err
	}
	defer c.Close(context.Background())
	h := c.Handler()
	put := func(ctx context.Context, node uint64, key, value string) bool {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "PUT", fmt.Sprintf("/%d/v1/kv/%s", node, key), strings.NewReader(value)))
		return rec.Code == http.StatusOK
	}
	phase := d / 3
	// The phase a write belongs to is the one in force when it starts,
	// set only once the partition (or the heal) has been applied, so that a
	// write counted as partitioned never ran on a whole network.
	var current atomic.Int32
	var mu sync.Mutex
	last := map[string]int{} // key → last acknowledged value
	var wg sync.WaitGroup
	start := time.Now()
	for side, node := range []uint64{1, 4} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				p := int(current.Load())
				if p > 2 {
					return
				}
				key := fmt.Sprint("k", i%5)
				value := side*1_000_000 + i
				wctx, cancel := context.WithTimeout(ctx, phase/2)
				ok := put(wctx, node, key, strconv.Itoa(value))
				cancel()
				ended := int(current.Load())
				mu.Lock()
				sides := &res.Minority
				if side == 1 {
					sides = &res.Majority
				}
				sides[p].Attempts++
				switch {
				case ok && ended == p:
					sides[p].Acks++
				case ok:
					sides[p].Late++
				}
				if ok {
					last[key] = value
				}
				mu.Unlock()
			}
		}()
	}
	if !resilience.Sleep(ctx, time.Until(start.Add(phase))) {
		current.Store(3)
		wg.Wait()
		return res, ctx.Err()
	}
	if err := c.Partition([]uint64{1, 2}, []uint64{3, 4, 5}); err != nil {
		current.Store(3)
		wg.Wait()
		return res, err
	}
	current.Store(1)
	if !resilience.Sleep(ctx, time.Until(start.Add(2*phase))) {
		current.Store(3)
		wg.Wait()
		return res, ctx.Err()
	}
	c.Heal()
	current.Store(2)
	resilience.Sleep(ctx, time.Until(start.Add(3*phase)))
	current.Store(3)
	wg.Wait()
	// After the heal every node's linearizable read must see, for each
	// key, the last acknowledged write (the two clients' writes to a key
	// are ordered by Raft; the log decides which was last).
	res.Linearizable = true
	for key := range last {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/3/v1/kv/"+key, nil))
		if rec.Code != http.StatusOK {
			res.Linearizable = false
			continue
		}
		for _, node := range []uint64{1, 5} {
			other := httptest.NewRecorder()
			h.ServeHTTP(other, httptest.NewRequestWithContext(ctx, "GET", fmt.Sprintf("/%d/v1/kv/%s", node, key), nil))
			if other.Body.String() != rec.Body.String() {
				res.Linearizable = false
			}
		}
	}
	return res, nil
}

// raftCAPLesson states the raftkv half's lesson.
func raftCAPLesson(r *Report, res raftCAP) {
	minP, majP := res.Minority[1], res.Majority[1]
	r.Figures["raftkv_partitioned_minority_acked"], r.Figures["raftkv_partitioned_minority_writes"] = float64(minP.Acks), float64(minP.Attempts)
	r.Figures["raftkv_partitioned_majority_acked"], r.Figures["raftkv_partitioned_majority_writes"] = float64(majP.Acks), float64(majP.Attempts)
	r.Figures["raftkv_partitioned_minority_late"] = float64(minP.Late)
	r.Lesson = append(r.Lesson, fmt.Sprintf("raftkv chose consistency under the same partition: the minority side {1,2} had %d of %d writes acknowledged while it lasted, the majority side {3,4,5} %d of %d — only a side with a quorum can commit, so the minority refuses rather than diverge.",
		minP.Acks, minP.Attempts, majP.Acks, majP.Attempts))
	if minP.Late > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("%d minority writes still waiting when the network healed committed then: a write that waits is not a write refused, and its client cannot tell which until the answer comes.", minP.Late))
	}
	if majP.Attempts > 0 && majP.Acks == 0 {
		r.Lesson = append(r.Lesson, "The majority acknowledged nothing during the partition either: the leader was on the minority side and the partition did not last the majority's election timeout — too short a run to show the majority carrying on.")
	}
	if res.Linearizable {
		r.Lesson = append(r.Lesson, "After the heal every node reads the same value for every key: one history, no siblings to resolve.")
	} else {
		r.Passed = false
		r.Lesson = append(r.Lesson, "After the heal nodes disagreed on a key's value: that contradicts linearizability.")
	}
	if minP.Acks > 0 {
		r.Passed = false
		r.Lesson = append(r.Lesson, fmt.Sprintf("The minority acknowledged %d writes while cut off from the quorum: that must not happen.", minP.Acks))
	}
}
