package mapreduce

import (
	"bytes"
	"container/heap"
	"encoding/hex"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The jobs that come with scalelab; each is a Definition a user's own job
// can copy.
func init() {
	Register(Definition{Name: "wordcount", Description: "occurrences of each word (letters only, case kept), with a combiner (combiner=off: without)",
		New: func(p Params) (Job, error) {
			switch p["combiner"] {
			case "", "on":
				return wordCount{}, nil
			case "off":
				return wordCountNoCombiner{}, nil
			}
			return nil, fmt.Errorf("wordcount: combiner=on or off, not %q", p["combiner"])
		}})
	Register(Definition{Name: "invertedindex", Description: "for each word, the files it occurs in",
		New: func(Params) (Job, error) { return invertedIndex{}, nil }})
	Register(Definition{Name: "grep", Description: "the lines matching pattern=REGEXP (RE2), as file:offset:line",
		New: newGrep})
	Register(Definition{Name: "topk", Description: "the k=N (default 10) most frequent words",
		New: newTopK})
	Register(Definition{Name: "sort", Description: "the input's lines in byte order, over a sampled range partitioner (the paper's sort)",
		New: newSort, Cuts: sampleCuts})
}

// Words calls fn with each maximal run of letters in b, as MIT 6.5840's
// word count splits (strings.FieldsFunc with !unicode.IsLetter); bytes
// that are not UTF-8 separate words.
func Words(b []byte, fn func(word []byte)) {
	start := -1
	for i := 0; i < len(b); {
		r, size := rune(b[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(b[i:])
		}
		letter := r < utf8.RuneSelf && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') ||
			r >= utf8.RuneSelf && r != utf8.RuneError && unicode.IsLetter(r)
		switch {
		case letter && start < 0:
			start = i
		case !letter && start >= 0:
			fn(b[start:i])
			start = -1
		}
		i += size
	}
	if start >= 0 {
		fn(b[start:])
	}
}

var one = []byte("1")

func sum(values iter.Seq[[]byte]) int64 {
	var n int64
	for v := range values {
		c, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			panic(fmt.Sprintf("mapreduce: a count reads %q", v)) // our own map output: a bug, not input
		}
		n += c
	}
	return n
}

type wordCount struct{}

func (wordCount) Map(rec Record, emit Emit) {
	Words(rec.Data, func(w []byte) { emit(w, one) })
}

// SumsValues makes wordCount a Summer.
func (wordCount) SumsValues() {}

func (wordCount) Combine(_ []byte, values iter.Seq[[]byte], emit func([]byte)) {
	emit(strconv.AppendInt(nil, sum(values), 10))
}

func (wordCount) Reduce(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	emit(strconv.AppendInt(append(append([]byte{}, key...), ' '), sum(values), 10))
}

// wordCountNoCombiner is the word count that sends every "word 1" pair
// through the shuffle: the combiner's lesson, measured.
type wordCountNoCombiner struct{}

func (wordCountNoCombiner) Map(rec Record, emit Emit) { wordCount{}.Map(rec, emit) }
func (wordCountNoCombiner) Reduce(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	wordCount{}.Reduce(key, values, emit)
}

type invertedIndex struct{}

func (invertedIndex) Map(rec Record, emit Emit) {
	seen := map[string]bool{}
	Words(rec.Data, func(w []byte) {
		if !seen[string(w)] {
			seen[string(w)] = true
			emit(w, []byte(rec.File))
		}
	})
}

func distinct(values iter.Seq[[]byte]) []string {
	set := map[string]bool{}
	for v := range values {
		set[string(v)] = true
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func (invertedIndex) Combine(_ []byte, values iter.Seq[[]byte], emit func([]byte)) {
	for _, f := range distinct(values) {
		emit([]byte(f))
	}
}

// Reduce: "word N file1,file2,…", as MIT's indexer prints it.
func (invertedIndex) Reduce(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	files := distinct(values)
	emit([]byte(fmt.Sprintf("%s %d %s", key, len(files), strings.Join(files, ","))))
}

type grep struct{ re *regexp.Regexp }

func newGrep(p Params) (Job, error) {
	if p["pattern"] == "" {
		return nil, fmt.Errorf("grep: give pattern=REGEXP")
	}
	re, err := regexp.Compile(p["pattern"])
	if err != nil {
		return nil, fmt.Errorf("grep: pattern: %w", err)
	}
	return grep{re: re}, nil
}

// Map keys a match by file and zero-padded offset, so that each reducer's
// output is in file order.
func (g grep) Map(rec Record, emit Emit) {
	if g.re.Match(rec.Data) {
		emit([]byte(fmt.Sprintf("%s:%020d", rec.File, rec.Offset)), rec.Data)
	}
}

func (grep) Reduce(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	file := key[:len(key)-21]
	n, _ := strconv.ParseInt(string(key[len(key)-20:]), 10, 64)
	for v := range values { // one: an offset is one line
		emit(fmt.Appendf(nil, "%s:%d:%s", file, n, v))
	}
}

type topK struct{ k int }

func newTopK(p Params) (Job, error) {
	k := 10
	if s, ok := p["k"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1_000_000 {
			return nil, fmt.Errorf("topk: k must be 1–1000000, not %q", s)
		}
		k = n
	}
	return topK{k: k}, nil
}

func (topK) Map(rec Record, emit Emit) { wordCount{}.Map(rec, emit) }

// SumsValues makes topK a Summer.
func (topK) SumsValues() {}

func (topK) Combine(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	wordCount{}.Combine(key, values, emit)
}

func (topK) Reduce(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	wordCount{}.Reduce(key, values, emit)
}

// Finish keeps the k largest counts of the reducers' "word count" lines,
// ties broken by word, largest first.
func (t topK) Finish(lines iter.Seq[[]byte], emit func([]byte)) {
	h := &countHeap{}
	for line := range lines {
		i := bytes.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		n, err := strconv.ParseInt(string(line[i+1:]), 10, 64)
		if err != nil {
			continue
		}
		wc := wordCountLine{word: string(line[:i]), n: n}
		if h.Len() < t.k {
			heap.Push(h, wc)
		} else if (*h)[0].less(wc) {
			(*h)[0] = wc
			heap.Fix(h, 0)
		}
	}
	out := make([]wordCountLine, h.Len())
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = heap.Pop(h).(wordCountLine)
	}
	for _, wc := range out {
		emit(fmt.Appendf(nil, "%s %d", wc.word, wc.n))
	}
}

type wordCountLine struct {
	word string
	n    int64
}

// less orders by count, then by word descending, so that the top k keep
// the alphabetically first of equal counts.
func (a wordCountLine) less(b wordCountLine) bool {
	if a.n != b.n {
		return a.n < b.n
	}
	return a.word > b.word
}

type countHeap []wordCountLine

func (h countHeap) Len() int           { return len(h) }
func (h countHeap) Less(i, j int) bool { return h[i].less(h[j]) }
func (h countHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *countHeap) Push(x any)        { *h = append(*h, x.(wordCountLine)) }
func (h *countHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// sortJob sorts lines: each line is a key, reducers own ranges of keys cut
// from a sample, so that reducer i's output is all below reducer i+1's and
// the parts concatenated are the sorted input.
type sortJob struct{ cuts [][]byte }

func newSort(p Params) (Job, error) {
	var cuts [][]byte
	if s := p["cuts"]; s != "" {
		for _, h := range strings.Split(s, ",") {
			b, err := hex.DecodeString(h)
			if err != nil {
				return nil, fmt.Errorf("sort: a cut reads %q", h)
			}
			cuts = append(cuts, b)
		}
	}
	if !slices.IsSortedFunc(cuts, bytes.Compare) {
		return nil, fmt.Errorf("sort: cuts out of order")
	}
	return sortJob{cuts: cuts}, nil
}

// EncodeCuts is the "cuts" parameter of cut keys.
func EncodeCuts(cuts [][]byte) string {
	hs := make([]string, len(cuts))
	for i, c := range cuts {
		hs[i] = hex.EncodeToString(c)
	}
	return strings.Join(hs, ",")
}

func (sortJob) Map(rec Record, emit Emit) { emit(rec.Data, nil) }

func (sortJob) Reduce(key []byte, values iter.Seq[[]byte], emit func([]byte)) {
	for range values {
		emit(key)
	}
}

// Partition: reducer i takes the keys from cut i-1 (inclusive) to cut i;
// with fewer cuts than reducers the last reducers get nothing.
func (s sortJob) Partition(key []byte, reducers int) int {
	i, _ := slices.BinarySearchFunc(s.cuts, key, func(c, k []byte) int {
		if bytes.Compare(c, k) <= 0 {
			return -1
		}
		return 1
	})
	return min(i, reducers-1)
}

// sampleCuts picks the R-1 quantiles of a sample as cut keys.
func sampleCuts(sample [][]byte, reducers int) [][]byte {
	s := slices.Clone(sample)
	slices.SortFunc(s, bytes.Compare)
	var cuts [][]byte
	for i := 1; i < reducers && len(s) > 0; i++ {
		c := s[i*len(s)/reducers]
		if len(cuts) == 0 || !bytes.Equal(cuts[len(cuts)-1], c) {
			cuts = append(cuts, bytes.Clone(c))
		}
	}
	return cuts
}
