package mapreduce

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
)

// A map task's output is one object: R sorted runs, one per reducer, one
// after the other, then an index. A run is a sequence of pairs, each
//
//	uvarint(len key) key uvarint(len value) value
//
// in key order (bytes.Compare; equal keys in any order). The index is R+1
// little-endian uint64 offsets (run r is bytes [off[r], off[r+1])), then
// uint32 R and the magic "MRr1". One object per map task, not one per
// (task, reducer), keeps the blob store's object count at M rather than
// M×R; a reducer reads its run with one ranged read.

const runMagic = "MRr1"

// runWriter writes the R runs of one map output, in reducer order.
type runWriter struct {
	w        *bufio.Writer
	n        int64
	offsets  []int64
	reducers int
	lastKey  []byte
	hasLast  bool
	scratch  [binary.MaxVarintLen64]byte
}

func newRunWriter(w io.Writer, reducers int) *runWriter {
	return &runWriter{w: bufio.NewWriterSize(w, 1<<20), reducers: reducers, offsets: []int64{0}}
}

// startRun moves on to reducer r's run (runs in between stay empty).
func (rw *runWriter) startRun(r int) {
	for len(rw.offsets) <= r {
		rw.offsets = append(rw.offsets, rw.n)
	}
	rw.hasLast = false
}

func (rw *runWriter) put(key, value []byte) error {
	if rw.hasLast && bytes.Compare(key, rw.lastKey) < 0 {
		return fmt.Errorf("mapreduce: run out of order: %q after %q", key, rw.lastKey)
	}
	rw.lastKey, rw.hasLast = append(rw.lastKey[:0], key...), true
	for _, b := range [][]byte{key, value} {
		k := binary.PutUvarint(rw.scratch[:], uint64(len(b)))
		if _, err := rw.w.Write(rw.scratch[:k]); err != nil {
			return err
		}
		if _, err := rw.w.Write(b); err != nil {
			return err
		}
		rw.n += int64(k + len(b))
	}
	return nil
}

// close writes the index; the object is then complete.
func (rw *runWriter) close() error {
	rw.startRun(rw.reducers)
	idx := make([]byte, 0, 8*len(rw.offsets)+8)
	for _, off := range rw.offsets {
		idx = binary.LittleEndian.AppendUint64(idx, uint64(off))
	}
	idx = binary.LittleEndian.AppendUint32(idx, uint32(rw.reducers))
	idx = append(idx, runMagic...)
	if _, err := rw.w.Write(idx); err != nil {
		return err
	}
	return rw.w.Flush()
}

// runIndex reads a map output's index: where each reducer's run lies.
func runIndex(r io.ReadSeeker) ([]int64, error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	if size < 8 {
		return nil, errors.New("mapreduce: a map output without an index")
	}
	tail := make([]byte, 8)
	if _, err := r.Seek(size-8, io.SeekStart); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, tail); err != nil {
		return nil, err
	}
	if string(tail[4:]) != runMagic {
		return nil, errors.New("mapreduce: a map output with a bad index")
	}
	reducers := int64(binary.LittleEndian.Uint32(tail))
	idxLen := 8 * (reducers + 1)
	if reducers < 1 || reducers > 1<<20 || size < idxLen+8 {
		return nil, errors.New("mapreduce: a map output with a bad index")
	}
	if _, err := r.Seek(size-8-idxLen, io.SeekStart); err != nil {
		return nil, err
	}
	raw := make([]byte, idxLen)
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, err
	}
	offs := make([]int64, reducers+1)
	for i := range offs {
		offs[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		if offs[i] > size-8-idxLen || (i > 0 && offs[i] < offs[i-1]) {
			return nil, errors.New("mapreduce: a map output with a bad index")
		}
	}
	return offs, nil
}

// openRun positions r at reducer's run and returns a reader of it that
// buffers bufSize bytes (a reducer reading hundreds of runs at once keeps
// each buffer small).
func openRun(r io.ReadSeeker, reducer, bufSize int) (*runReader, error) {
	offs, err := runIndex(r)
	if err != nil {
		return nil, err
	}
	if reducer >= len(offs)-1 {
		return nil, fmt.Errorf("mapreduce: a map output for %d reducers has no run %d", len(offs)-1, reducer)
	}
	if _, err := r.Seek(offs[reducer], io.SeekStart); err != nil {
		return nil, err
	}
	return &runReader{r: bufio.NewReaderSize(io.LimitReader(r, offs[reducer+1]-offs[reducer]), bufSize)}, nil
}

// runReader reads one run's pairs; key and value are valid until next.
type runReader struct {
	r          *bufio.Reader
	key, value []byte
	err        error
	source     int // which run of the merge, for RunError
}

// RunError is a run that could not be read in a merge: Source is its
// position in the merge's list (a reducer's map task).
type RunError struct {
	Source int
	Err    error
}

func (e *RunError) Error() string { return fmt.Sprintf("run %d: %v", e.Source, e.Err) }
func (e *RunError) Unwrap() error { return e.Err }

// next reads the next pair; false at the end or on an error (err).
func (rr *runReader) next() bool {
	var ok bool
	if rr.key, ok = rr.field(rr.key); !ok {
		return false
	}
	if rr.value, ok = rr.field(rr.value); !ok {
		if rr.err == nil {
			rr.err = io.ErrUnexpectedEOF
		}
		return false
	}
	return true
}

func (rr *runReader) field(buf []byte) ([]byte, bool) {
	n, err := binary.ReadUvarint(rr.r)
	if err != nil {
		if err != io.EOF {
			rr.err = fmt.Errorf("mapreduce: a run: %w", err)
		}
		return nil, false
	}
	if n > 1<<31 {
		rr.err = fmt.Errorf("mapreduce: a run holds a %d-byte field", n)
		return nil, false
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(rr.r, buf); err != nil {
		rr.err = fmt.Errorf("mapreduce: a run: %w", err)
		return nil, false
	}
	return buf, true
}

// mergeRuns merges sorted runs and calls fn once per key with every value
// of that key across them (values valid only while iterated). It returns
// the first read error or fn's.
func mergeRuns(runs []*runReader, fn func(key []byte, values iter.Seq[[]byte]) error) error {
	h := runHeap{}
	for i, r := range runs {
		r.source = i
		if r.next() {
			h = append(h, r)
		} else if r.err != nil {
			return &RunError{Source: i, Err: r.err}
		}
	}
	heap.Init(&h)
	var readErr error
	advance := func() {
		top := h[0]
		if top.next() {
			heap.Fix(&h, 0)
			return
		}
		if top.err != nil && readErr == nil {
			readErr = &RunError{Source: top.source, Err: top.err}
		}
		heap.Pop(&h)
	}
	var key []byte
	for len(h) > 0 && readErr == nil {
		key = append(key[:0], h[0].key...)
		values := func(yield func([]byte) bool) {
			for len(h) > 0 && readErr == nil && bytes.Equal(h[0].key, key) {
				ok := yield(h[0].value)
				advance()
				if !ok {
					return
				}
			}
		}
		if err := fn(key, values); err != nil {
			return err
		}
		for len(h) > 0 && readErr == nil && bytes.Equal(h[0].key, key) { // what fn left unread
			advance()
		}
	}
	return readErr
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].key, h[j].key) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
