package mapreduce

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
)

// A generated corpus: lines of words drawn from a Zipf distribution over
// a fixed vocabulary (s = 1.1, as word frequencies in English roughly
// are), deterministic from its seed, so that a benchmark's input and its
// expected output are the same on every machine. Words are letters only,
// so the word count's splitter sees exactly the words written.

const corpusVocabulary = 200_000

// vocabulary is the corpus's words, word i being the i-th most frequent.
func vocabulary(seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0x5ca1ab1e))
	words := make([][]byte, corpusVocabulary)
	seen := make(map[string]bool, corpusVocabulary)
	for i := range words {
		for {
			// Frequent words are short, as in natural language.
			n := 2 + rng.IntN(3) + min(8, i/20_000)
			w := make([]byte, n)
			for j := range w {
				w[j] = byte('a' + rng.IntN(26))
			}
			if !seen[string(w)] {
				seen[string(w)] = true
				words[i] = w
				break
			}
		}
	}
	return words
}

// WriteCorpus writes the corpus of seed to w: whole lines, as many as fit
// in size bytes.
func WriteCorpus(w io.Writer, seed uint64, size int64) (int64, error) {
	words := vocabulary(seed)
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	zipf := rand.NewZipf(rng, 1.1, 1, corpusVocabulary-1)
	bw := bufio.NewWriterSize(w, 1<<20)
	var n int64
	var line []byte
	for {
		line = line[:0]
		per := 6 + rng.IntN(12)
		for i := 0; i < per; i++ {
			if i > 0 {
				line = append(line, ' ')
			}
			line = append(line, words[zipf.Uint64()]...)
		}
		line = append(line, '\n')
		if n+int64(len(line)) > size {
			break // whole lines only, and never past size (a file of 64 MiB is one 64 MiB split)
		}
		bw.Write(line)
		n += int64(len(line))
	}
	return n, bw.Flush()
}

// WriteCorpusFiles writes the corpus as files of at most fileSize bytes
// into dir (part-00000.txt …), totalling at most size bytes.
func WriteCorpusFiles(dir string, seed uint64, size, fileSize int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := 0; size > 0; i++ {
		part := min(size, fileSize)
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%05d.txt", i)))
		if err != nil {
			return err
		}
		_, err = WriteCorpus(f, seed+uint64(i), part)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		size -= part
	}
	return nil
}

var corpusName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// maxCorpus bounds what the API generates into the blob store.
const maxCorpus = 2 << 30

// GenerateCorpus writes a corpus of about size bytes into the blob store
// under mapreduce/corpus/NAME/, in objects of 16 MiB, and returns the
// input to submit ("blob:mapreduce/corpus/NAME/").
func GenerateCorpus(ctx context.Context, store blob.Store, name string, seed uint64, size int64) (string, error) {
	if !corpusName.MatchString(name) {
		return "", apperr.E(apperr.Invalid, "corpus name %q: 1 to 64 letters, digits, _ or -", name)
	}
	if size < 1 || size > maxCorpus {
		return "", apperr.E(apperr.Invalid, "corpus size must be 1 byte to %d bytes", int64(maxCorpus))
	}
	prefix := "mapreduce/corpus/" + name + "/"
	const objectSize = 16 << 20
	for i := 0; size > 0; i++ {
		tmp, err := os.CreateTemp("", "mapreduce-corpus-*")
		if err != nil {
			return "", err
		}
		part := min(size, objectSize)
		written, err := WriteCorpus(tmp, seed+uint64(i), part)
		if err == nil {
			_, err = tmp.Seek(0, io.SeekStart)
		}
		if err == nil {
			_, err = store.Put(ctx, fmt.Sprintf("%spart-%05d.txt", prefix, i), tmp, written, "text/plain")
		}
		tmp.Close()
		os.Remove(tmp.Name())
		if err != nil {
			return "", fmt.Errorf("mapreduce: generate corpus: %w", err)
		}
		size -= part
	}
	return "blob:" + prefix, nil
}
