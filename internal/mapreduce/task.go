package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/scalelab/scalelab/internal/platform/blob"
)

// execute runs one attempt's work and says how it ended.
func (w *Worker) execute(ctx context.Context, msg taskMessage) event {
	ref := msg.attemptRef
	spec, err := w.spec(ctx, ref.Job)
	if err != nil {
		return failed(ref, err)
	}
	def, err := Lookup(spec.Job)
	if err != nil {
		return failed(ref, err)
	}
	job, err := def.New(spec.Params)
	if err != nil {
		return failed(ref, err)
	}
	out, err := os.CreateTemp(w.cfg.TmpDir, "mapreduce-out-*")
	if err != nil {
		return failed(ref, err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	var n int64
	var key string
	switch ref.Kind {
	case "map":
		if ref.Index >= len(spec.Splits) {
			return failed(ref, fmt.Errorf("mapreduce: job %s has no map task %d", ref.Job, ref.Index))
		}
		n, err = w.runMap(ctx, spec, job, spec.Splits[ref.Index], out)
		key = mapOutputKey(ref.Job, ref.Index, ref.Attempt)
	case "reduce":
		if ref.Index >= spec.Reducers || len(msg.Maps) != len(spec.Splits) {
			return failed(ref, fmt.Errorf("mapreduce: reduce task %d of job %s names %d map outputs for %d maps", ref.Index, ref.Job, len(msg.Maps), len(spec.Splits)))
		}
		n, err = w.runReduce(ctx, job, ref, msg.Maps, out)
		key = partKey(ref.Job, ref.Index)
		var lost *lostInput
		if errors.As(err, &lost) {
			ev := failed(ref, err)
			ev.LostMap, ev.LostAttempt = lost.mapIndex, lost.attempt
			return ev
		}
	}
	if err != nil {
		return failed(ref, err)
	}
	// The output becomes visible at once, whole, under its final name:
	// a map output under its attempt's own key (the coordinator picks the
	// first done), a reduce part under the part's key (every attempt of a
	// deterministic job writes the same bytes).
	size, err := out.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = out.Seek(0, io.SeekStart)
	}
	if err == nil {
		_, err = w.blob.Put(ctx, key, &ctxReader{ctx: ctx, r: out}, size, "application/octet-stream")
	}
	if err != nil {
		return failed(ref, fmt.Errorf("mapreduce: store %s: %w", key, err))
	}
	w.met.workBytes.WithLabelValues("written").Add(float64(size))
	return event{attemptRef: ref, Type: eventDone, Records: n, Bytes: size, LostMap: -1}
}

func (w *Worker) runMap(ctx context.Context, spec JobSpec, job Job, sp Split, out io.Writer) (int64, error) {
	in, err := openInput(ctx, w.blob, spec.InputRoot, sp.File)
	if err != nil {
		return 0, fmt.Errorf("mapreduce: open input: %w", err)
	}
	defer in.Close()
	cr := &ctxReadSeeker{ctx: ctx, r: in}
	n, err := RunMap(job, cr, sp, MapOptions{Reducers: spec.Reducers, MaxRecord: spec.MaxRecord, Memory: spec.Memory, TmpDir: w.cfg.TmpDir}, out)
	w.met.workBytes.WithLabelValues("read").Add(float64(cr.n))
	return n, err
}

// lostInput is a reduce input that is missing or does not read.
type lostInput struct {
	mapIndex, attempt int
	err               error
}

func (e *lostInput) Error() string {
	return fmt.Sprintf("map %d's output (attempt %d): %v", e.mapIndex, e.attempt, e.err)
}
func (e *lostInput) Unwrap() error { return errLost }

func (w *Worker) runReduce(ctx context.Context, job Job, ref attemptRef, maps []string, out io.Writer) (int64, error) {
	lost := func(i int, err error) error { return &lostInput{mapIndex: i, attempt: attemptOf(maps[i]), err: err} }
	// Every map output is open at once for the merge; each reader's
	// buffer shrinks with their number so that memory stays bounded.
	bufSize := min(256<<10, max(4<<10, (64<<20)/max(1, len(maps))))
	runs := make([]*runReader, 0, len(maps))
	for i, key := range maps {
		if key != mapOutputKey(ref.Job, i, attemptOf(key)) {
			return 0, fmt.Errorf("mapreduce: reduce input %d is %q, not a map output of job %s", i, key, ref.Job)
		}
		obj, err := w.blob.Open(ctx, key)
		if errors.Is(err, blob.ErrNotFound) {
			return 0, lost(i, err)
		}
		if err != nil {
			return 0, fmt.Errorf("mapreduce: open %s: %w", key, err)
		}
		defer obj.Close()
		rr, err := openRun(&ctxReadSeeker{ctx: ctx, r: obj}, ref.Index, bufSize)
		if err != nil {
			return 0, lost(i, err)
		}
		runs = append(runs, rr)
	}
	n, err := RunReduce(job, runs, out)
	var re *RunError
	if errors.As(err, &re) && ctx.Err() == nil {
		return n, lost(re.Source, re.Err)
	}
	return n, err
}

// attemptOf reads the attempt number back from a map output key.
func attemptOf(key string) int {
	var a int
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '.' {
			_, _ = fmt.Sscanf(key[i+1:], "%d", &a)
			break
		}
	}
	return a
}

// ctxReadSeeker stops reading once its context ends, so a cancelled
// attempt stops within one buffer's read.
type ctxReadSeeker struct {
	ctx context.Context
	r   io.ReadSeeker
	n   int64
}

func (c *ctxReadSeeker) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *ctxReadSeeker) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
