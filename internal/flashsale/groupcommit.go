package flashsale

import (
	"context"
	"fmt"
	"time"
)

// groupCommit runs calls in groups: a few goroutines each take every call
// waiting, up to max, and apply them together — one transaction, one
// query — and each caller waits for its own result. The guarantee is the
// single call's: a caller is answered only after its group is applied.
// Why: the profiles of the async path on PostgreSQL put most of the time
// in each order's own round trips and commits (the admission's insert, the
// worker's read and its settlement); a group pays them once for all the
// calls that arrived meanwhile, and under no load a group is one call.
type groupCommit[In, Out any] struct {
	name  string
	in    chan *groupCall[In, Out]
	max   int
	apply func(ctx context.Context, ins []In) []groupResult[Out]
}

type groupCall[In, Out any] struct {
	in   In
	done chan groupResult[Out]
}

type groupResult[Out any] struct {
	out Out
	err error
}

// groupRunners is how many groups of one kind are applied at once.
const groupRunners = 2

func newGroupCommit[In, Out any](name string, max int, apply func(ctx context.Context, ins []In) []groupResult[Out]) *groupCommit[In, Out] {
	return &groupCommit[In, Out]{name: name, in: make(chan *groupCall[In, Out], 4*max), max: max, apply: apply}
}

// do waits until in is applied, or ctx ends (then the outcome is unknown:
// the group may be applied yet).
func (g *groupCommit[In, Out]) do(ctx context.Context, in In) (Out, error) {
	var zero Out
	c := &groupCall[In, Out]{in: in, done: make(chan groupResult[Out], 1)}
	select {
	case g.in <- c:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	select {
	case r := <-c.done:
		return r.out, r.err
	case <-ctx.Done():
		return zero, fmt.Errorf("flashsale: gave up waiting for the %s: %w", g.name, ctx.Err())
	}
}

// run applies groups until ctx ends; start groupRunners of it.
func (g *groupCommit[In, Out]) run(ctx context.Context) {
	for {
		var first *groupCall[In, Out]
		select {
		case <-ctx.Done():
			return
		case first = <-g.in:
		}
		calls := []*groupCall[In, Out]{first}
	fill:
		for len(calls) < g.max {
			select {
			case c := <-g.in:
				calls = append(calls, c)
			default:
				break fill
			}
		}
		ins := make([]In, len(calls))
		for i, c := range calls {
			ins[i] = c.in
		}
		// The group's work is no caller's: a client that leaves does not
		// cut the others' commit.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		results := g.apply(wctx, ins)
		cancel()
		for i, c := range calls {
			c.done <- results[i]
		}
	}
}

// allFailed is every call's result when the whole group failed.
func allFailed[Out any](n int, err error) []groupResult[Out] {
	out := make([]groupResult[Out], n)
	for i := range out {
		out[i].err = err
	}
	return out
}
