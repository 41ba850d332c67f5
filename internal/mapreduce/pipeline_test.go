package mapreduce

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// corpus makes files of random lines: words from a small vocabulary (so
// that keys repeat across splits and spills), some non-ASCII letters,
// empty lines and stray bytes that are not UTF-8.
func corpus(rng *rand.Rand, files int) map[string][]byte {
	vocab := []string{"the", "a", "map", "reduce", "Straße", "naïve", "x", "zebra", "The", "shuffle", "日本"}
	out := map[string][]byte{}
	for f := 0; f < files; f++ {
		var b bytes.Buffer
		for l := rng.IntN(60); l > 0; l-- {
			for w := rng.IntN(12); w > 0; w-- {
				switch rng.IntN(20) {
				case 0:
					b.WriteByte(0xff)
				case 1:
					b.WriteString("42,")
				default:
					b.WriteString(vocab[rng.IntN(len(vocab))])
					b.WriteByte(' ')
				}
			}
			b.WriteByte('\n')
		}
		out[fmt.Sprintf("in-%d.txt", f)] = b.Bytes()
	}
	return out
}

// sequential is the reference: every record mapped in one table, every
// key reduced in order, no splits, runs, spills or combiner.
func sequential(t *testing.T, job Job, files map[string][]byte) []string {
	t.Helper()
	groups := map[string][][]byte{}
	for _, name := range sortedNames(files) {
		err := ReadSplit(bytes.NewReader(files[name]), Split{File: name, Length: int64(len(files[name]))}, 1<<20, func(rec Record) error {
			job.Map(rec, func(k, v []byte) { groups[string(k)] = append(groups[string(k)], bytes.Clone(v)) })
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lines []string
	for _, k := range keys {
		job.Reduce([]byte(k), slices.Values(groups[k]), func(l []byte) { lines = append(lines, string(l)) })
	}
	return lines
}

func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// pipeline runs job the distributed way, in one process: splits, map
// tasks into output objects with a tiny memory (so every task spills
// several times), then each reducer merging its run of every object. It
// returns each reducer's output lines.
func pipeline(t *testing.T, job Job, files map[string][]byte, reducers int, splitSize int64, memory int) [][]string {
	t.Helper()
	var inputs []InputFile
	for _, n := range sortedNames(files) {
		inputs = append(inputs, InputFile{Name: n, Size: int64(len(files[n]))})
	}
	var outputs [][]byte
	for _, sp := range PlanSplits(inputs, splitSize) {
		var out bytes.Buffer
		if _, err := RunMap(job, bytes.NewReader(files[sp.File]), sp, MapOptions{Reducers: reducers, Memory: memory, TmpDir: t.TempDir()}, &out); err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, out.Bytes())
	}
	parts := make([][]string, reducers)
	for r := 0; r < reducers; r++ {
		var runs []*runReader
		for _, o := range outputs {
			rr, err := openRun(bytes.NewReader(o), r, 4096)
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, rr)
		}
		var out bytes.Buffer
		if _, err := RunReduce(job, runs, &out); err != nil {
			t.Fatal(err)
		}
		if s := out.String(); s != "" {
			parts[r] = strings.Split(strings.TrimSuffix(s, "\n"), "\n")
		}
	}
	return parts
}

// Each job's distributed output holds exactly the sequential run's lines,
// every reducer's part is in key order, and a key reaches one reducer
// only: over random corpora, reducer counts and split sizes, with spills.
func TestPipelineEqualsSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := 0; trial < 12; trial++ {
		files := corpus(rng, 1+rng.IntN(4))
		reducers := 1 + rng.IntN(5)
		splitSize := int64(64 + rng.IntN(2048))
		memory := 256 + rng.IntN(4096)
		for _, name := range []string{"wordcount", "invertedindex", "grep"} {
			def, _ := Lookup(name)
			job, err := def.New(Params{"pattern": "map|Straße"})
			if err != nil {
				t.Fatal(err)
			}
			want := sequential(t, job, files)
			parts := pipeline(t, job, files, reducers, splitSize, memory)
			var got []string
			for r, p := range parts {
				if name != "grep" && !slices.IsSorted(p) {
					t.Fatalf("%s: reducer %d's part is out of key order: %q", name, r, p)
				}
				got = append(got, p...)
			}
			slices.Sort(got)
			wantSorted := slices.Clone(want)
			slices.Sort(wantSorted)
			if !slices.Equal(got, wantSorted) {
				t.Fatalf("%s, trial %d (R=%d, splits of %d, memory %d):\n got  %q\n want %q", name, trial, reducers, splitSize, memory, got, wantSorted)
			}
		}
	}
}

// The sort job's parts, concatenated in reducer order, are the input's
// lines sorted: the sampled range partitioner keeps reducer i's keys
// below reducer i+1's.
func TestSortJobIsGloballySorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for trial := 0; trial < 8; trial++ {
		files := corpus(rng, 3)
		var all, sample [][]byte
		for _, n := range sortedNames(files) {
			_ = ReadSplit(bytes.NewReader(files[n]), Split{File: n, Length: int64(len(files[n]))}, 1<<20, func(r Record) error {
				all = append(all, bytes.Clone(r.Data))
				if rng.IntN(3) == 0 {
					sample = append(sample, bytes.Clone(r.Data))
				}
				return nil
			})
		}
		reducers := 1 + rng.IntN(6)
		def, _ := Lookup("sort")
		job, err := def.New(Params{"cuts": EncodeCuts(def.Cuts(sample, reducers))})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range pipeline(t, job, files, reducers, 300, 512) {
			got = append(got, p...)
		}
		var want []string
		for _, l := range all {
			want = append(want, string(l))
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d, R=%d: got %d lines, want %d sorted lines\n got  %q\n want %q", trial, reducers, len(got), len(want), got, want)
		}
	}
}

// Top-k's finish step over the reducers' parts gives the k most frequent
// words of the sequential count, ties broken by the word.
func TestTopKFinish(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	files := corpus(rng, 4)
	def, _ := Lookup("topk")
	job, err := def.New(Params{"k": "4"})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, l := range sequential(t, wordCount{}, files) {
		var w string
		var n int
		fmt.Sscanf(l, "%s %d", &w, &n)
		counts[w] = n
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if counts[words[i]] != counts[words[j]] {
			return counts[words[i]] > counts[words[j]]
		}
		return words[i] < words[j]
	})
	var want []string
	for _, w := range words[:4] {
		want = append(want, fmt.Sprintf("%s %d", w, counts[w]))
	}
	var lines [][]byte
	for _, p := range pipeline(t, job, files, 3, 500, 1024) {
		for _, l := range p {
			lines = append(lines, []byte(l))
		}
	}
	var got []string
	job.(Finisher).Finish(slices.Values(lines), func(l []byte) { got = append(got, string(l)) })
	if !slices.Equal(got, want) {
		t.Fatalf("top 4: got %q, want %q", got, want)
	}
}
