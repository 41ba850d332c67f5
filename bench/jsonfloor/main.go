// Command jsonfloor is the least a Go net/http server can do to answer a
// cached JSON read: one map lookup and a write of bytes encoded beforehand
// — no routing, metrics, cache, middleware or logging. bench/albums.sh runs
// it beside the album store, serving the very bytes the store answers, to
// separate what the Go HTTP stack costs on this machine from what the
// album store adds on top.
//
//	jsonfloor -addr 127.0.0.1:18194 -bodies bodies.tsv   # lines: /path<TAB>json
//
// Each body is answered with a trailing newline, as encoding/json's
// Encoder (and so the album store) writes it.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18194", "listen address")
	file := flag.String("bodies", "", "file of lines: /path<TAB>JSON body")
	flag.Parse()
	f, err := os.Open(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "jsonfloor:", err)
		os.Exit(2)
	}
	bodies := map[string][]byte{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if path, body, ok := strings.Cut(sc.Text(), "\t"); ok {
			bodies[path] = []byte(body + "\n")
		}
	}
	f.Close()
	err = http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
		_, _ = w.Write(body)
	}))
	fmt.Fprintln(os.Stderr, "jsonfloor:", err)
	os.Exit(1)
}
