// Package plot draws the reports' charts as standalone SVG documents: line
// charts (throughput and latency over time, a figure against a setting)
// bar charts (one figure per variant) and timelines (Gantt: which worker
// ran which task when, a MapReduce job's story).
//
// It is written here rather than taken from a plotting library because a
// report needs only these three shapes, the files must open in a browser
// with nothing else installed, and the popular Go plotting libraries
// (gonum/plot among them) bring font and image dependencies far larger
// than the ~200 lines below. Axes start at zero on y (a rate or a latency
// read off a truncated axis misleads), x may be linear or logarithmic
// (goroutines 1…64, log lengths 1 000…100 000).
package plot
