// Command mrsequential is the sequential word count bench/mapreduce.sh
// sets beside the MapReduce cluster, as MIT 6.5840's mrsequential is set
// beside the lab's: one process reads every file line by line, splits
// each line into maximal runs of letters (strings.FieldsFunc with
// !unicode.IsLetter, as the lab's wc plug-in does), counts in a map, and
// prints "word count" lines sorted by word.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"unicode"
)

func main() {
	counts := map[string]int{}
	for _, name := range os.Args[1:] {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			for _, w := range bytes.FieldsFunc(sc.Bytes(), func(r rune) bool { return !unicode.IsLetter(r) }) {
				counts[string(w)]++
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		f.Close()
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Strings(words)
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	for _, w := range words {
		fmt.Fprintf(out, "%s %d\n", w, counts[w])
	}
	out.Flush()
}
