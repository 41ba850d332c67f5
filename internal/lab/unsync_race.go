//go:build race

package lab

// unsynchronisedCounter is nil under the race detector: the experiment
// skips it and says so.
var unsynchronisedCounter func(g, ops int) int64
