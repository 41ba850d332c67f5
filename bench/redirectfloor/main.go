// Command redirectfloor is the least a Go net/http server can do to answer a
// redirect: one map lookup, a Location header, 302 — no routing, metrics,
// cache, analytics or logging. bench/shortener.sh runs it beside scalelab and
// nginx to separate what the Go HTTP stack costs on this machine from what
// the shortener adds on top.
//
//	redirectfloor -addr 127.0.0.1:18184 -map map.conf   # the nginx map file: /code "url";
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18184", "listen address")
	mapFile := flag.String("map", "", "nginx map file with lines: /code \"url\";")
	flag.Parse()
	f, err := os.Open(*mapFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redirectfloor:", err)
		os.Exit(2)
	}
	targets := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 {
			targets[fields[0]] = strings.Trim(fields[1], `";`)
		}
	}
	f.Close()
	err = http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := targets[r.URL.Path]; ok {
			w.Header()["Location"] = []string{u}
			w.WriteHeader(http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	fmt.Fprintln(os.Stderr, "redirectfloor:", err)
	os.Exit(1)
}
