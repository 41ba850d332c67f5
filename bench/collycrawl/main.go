// Command collycrawl crawls the synthetic web (`scalelab crawler testweb`)
// with Colly v2, set up the way a Colly user gets per-host politeness:
// robots.txt obeyed, one LimitRule per host (Colly's LimitRule is one
// semaphore for every domain its glob matches, so a single "*" rule with
// Parallelism 1 would make the whole crawl serial), Parallelism 1 and the
// given Delay, which Colly sleeps after a response before the host's next
// request. Names resolve through the web's DNS server, as they do for
// scalelab's crawler. It is bench/crawler.sh's Colly anchor.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocolly/colly/v2"
)

func main() {
	hosts := flag.Int("hosts", 1000, "the web's hosts (host0.test … hostN-1.test)")
	port := flag.Int("port", 8380, "the web's port")
	dnsAddr := flag.String("dns", "127.0.0.1:8353", "the web's DNS server")
	delay := flag.Duration("delay", 20*time.Millisecond, "per-host delay after each response")
	timeout := flag.Duration("timeout", 2*time.Second, "request timeout")
	maxBody := flag.Int("max-body", 2<<20, "bytes of a body read")
	flag.Parse()

	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", *dnsAddr)
	}}
	dialer := &net.Dialer{Timeout: *timeout, Resolver: resolver}
	transport := &http.Transport{DialContext: dialer.DialContext, MaxIdleConns: 4 * *hosts, MaxIdleConnsPerHost: 2,
		IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: *timeout}

	c := colly.NewCollector(colly.Async(true), colly.UserAgent("colly-bench"), colly.MaxBodySize(*maxBody))
	c.IgnoreRobotsTxt = false
	c.WithTransport(transport)
	c.SetRequestTimeout(*timeout)
	for i := range *hosts {
		if err := c.Limit(&colly.LimitRule{DomainGlob: fmt.Sprintf("host%d.test:%d", i, *port), Parallelism: 1, Delay: *delay}); err != nil {
			log.Fatal(err)
		}
	}
	var pages, errs atomic.Int64
	c.OnResponse(func(*colly.Response) { pages.Add(1) })
	c.OnError(func(*colly.Response, error) { errs.Add(1) })
	c.OnHTML("a[href]", func(e *colly.HTMLElement) { _ = e.Request.Visit(e.Attr("href")) })

	start := time.Now()
	for i := range *hosts {
		_ = c.Visit(fmt.Sprintf("http://host%d.test:%d/", i, *port))
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	select {
	case <-done:
	case <-stop:
	}
	el := time.Since(start).Seconds()
	fmt.Printf("colly: %d responses, %d errors in %.1f s (%.0f/s)\n", pages.Load(), errs.Load(), el, float64(pages.Load())/el)
}
