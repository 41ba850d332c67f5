package raftkv

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

type recorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(client int, in CheckInput, out CheckOutput, call, ret int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
}

// workload starts clients that run operations of the given kinds on key
// "x" through nodes chosen by pick, recording each in rec, until done.
// Writes are retried with the same request number (never applied twice);
// a write whose outcome was never learnt is recorded as unknown, ending at
// infinity; a read that failed is left out (it changed nothing).
func workload(ctx context.Context, t *testing.T, rec *recorder, seed uint64, clients int, kinds []OpKind,
	pick func(*rand.Rand) *Node, done func() bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for client := 1; client <= clients; client++ {
		wg.Add(1)
		go func(client int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(client)))
			var seq uint64
			lastRev := int64(0)
			for i := 0; !done(); i++ {
				in := CheckInput{Kind: kinds[r.IntN(len(kinds))], Value: fmt.Sprintf("c%d-%d", client, i)}
				if in.Kind == OpCAS {
					in.IfRevision = lastRev
				}
				call := rec.now()
				if in.Kind == OpGet {
					actx, acancel := context.WithTimeout(ctx, 150*time.Millisecond)
					v, mod, _, ok, err := pick(r).Read(actx, []byte("x"), true)
					acancel()
					if err == nil {
						rec.add(client, in, CheckOutput{Found: ok, Value: string(v), Revision: mod}, call, rec.now())
						if ok {
							lastRev = mod
						}
					}
					continue
				}
				seq++
				cmd := kv.Command{Op: kv.OpPut, Key: []byte("x"), Value: []byte(in.Value), IfRevision: kv.Unconditional,
					Client: uint64(client), Seq: seq}
				switch in.Kind {
				case OpCAS:
					cmd.IfRevision = in.IfRevision
				case OpDelete:
					cmd.Op, cmd.Value = kv.OpDelete, nil
				}
				out, ret := CheckOutput{Unknown: true}, int64(math.MaxInt64)
				for attempt := 0; attempt < 8 && ctx.Err() == nil; attempt++ {
					actx, acancel := context.WithTimeout(ctx, 150*time.Millisecond)
					res, err := pick(r).Propose(actx, cmd)
					acancel()
					if err != nil {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if res.Status == kv.Stale || res.Status == kv.UnknownSession {
						t.Errorf("client %d request %d: %v", client, seq, res.Status)
					}
					out, ret = CheckOutput{Revision: res.Revision, Applied: res.Status == kv.Applied, Current: res.Current}, rec.now()
					break
				}
				rec.add(client, in, out, call, ret)
			}
		}(client)
	}
	return &wg
}

// checkHistory fails the test when rec's history is not linearizable,
// writing Porcupine's visualisation to path and logging where.
func checkHistory(t *testing.T, rec *recorder, path string, context ...any) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, rec.ops, 10*time.Second)
	switch res {
	case porcupine.Illegal:
		if err := porcupine.VisualizePath(RegisterModel, info, path); err != nil {
			t.Logf("visualisation: %v", err)
		}
		t.Fatalf("history of %d operations is NOT linearizable; visualisation: %s %v", len(rec.ops), path, context)
	case porcupine.Unknown:
		t.Logf("checker timed out on %d operations", len(rec.ops))
	}
}
