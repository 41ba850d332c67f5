package frontier

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkFrontierMemory reports the heap one queued URL costs: 200,000
// URLs of 2,000 hosts (the bench's synthetic web), URL strings included
// (about 35 bytes each here).
//
//	go test -run - -bench FrontierMemory ./internal/crawler/frontier
func BenchmarkFrontierMemory(b *testing.B) {
	const hosts, perHost = 2000, 100
	urls := make([]Item, 0, hosts*perHost)
	for i := 0; i < hosts; i++ {
		h := fmt.Sprintf("host%d.test:8380", i)
		for j := 0; j < perHost; j++ {
			urls = append(urls, Item{URL: fmt.Sprintf("http://%s/p/%d.html", h, j), Host: h, Priority: j % 4, Depth: j})
		}
	}
	var strBytes int
	for _, u := range urls {
		strBytes += len(u.URL)
	}
	for n := 0; n < b.N; n++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f, _ := New(Config{Levels: 4, BackQueues: 192, Delay: 20 * time.Millisecond})
		for _, it := range urls {
			if err := f.Add(it, t0); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(urls)), "B/url")
		b.ReportMetric(float64(strBytes)/float64(len(urls)), "urlchars/url")
		runtime.KeepAlive(f)
	}
}
