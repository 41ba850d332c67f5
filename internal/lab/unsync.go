//go:build !race

package lab

// unsynchronisedCounter increments a plain int64 from g goroutines with no
// synchronisation at all: the data race the experiment exists to show. Each
// increment reads, computes (a call the compiler may not inline, as a
// real update would) and writes back, as a read-modify-write of shared
// state does; a goroutine that reads between another's read and write
// loses that one's update. It is left out of race-detector builds
// (unsync_race.go), which would stop the program at the first conflict.
func unsynchronisedCounter(g, ops int) int64 {
	var n int64
	p := &n
	parallel(g, func() {
		for range ops {
			v := *p
			*p = plusOne(v)
		}
	})
	return n
}

//go:noinline
func plusOne(v int64) int64 { return v + 1 }
