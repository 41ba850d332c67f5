// Package loadgen is scalelab's load generator: `scalelab load http|ws` on
// the command line, and Run(ctx, Plan) for every other system's benchmarks
// and experiments, so that a system only describes its traffic.
//
// Two models. The open model (Plan.Rate, Plan.Stages) gives request i an
// intended start time from a pure Schedule (constant or piecewise-linear
// ramps) and measures its latency from that time, whatever the server does.
// A server that stalls for a second therefore shows a second of latency on
// every request that was due meanwhile, which is what its users would see:
// this is the coordinated-omission correction of wrk2. Workers take the
// next index from one atomic counter, sleep until its time, and send on
// their own keep-alive connection; Connections bounds the requests in
// flight, and waiting for a free connection counts as latency. The closed
// model (Plan.VUs) is N virtual users that send, wait and think; its
// latency is the round trip, and its rate is whatever the server allows.
//
// Measurement. Each worker records into its own HDR histogram (1 µs to 1 h,
// three significant digits) behind an uncontended mutex; once a second the
// run harvests every worker's histogram into that second's entry of the
// series and into the run's total, so the total is exactly the sum of the
// seconds. Histograms serialise losslessly
// (summary.json "histogram"), so runs of several generators Merge into
// exact percentiles. Errors are classified by kind: timeout, refused,
// reset, closed, protocol, other, and 4xx/5xx statuses.
//
// The HTTP/1.1 client is written here rather than taken from net/http,
// because it is the instrument: it writes a request built once (or rendered
// from templates: {{seq}}, {{rand A B}}, {{uuid}}), reads the status line
// and headers, and discards the body by Content-Length or chunks, with one
// read buffer per connection and no allocation per request. That keeps the
// generator's own cost near wrk's, so that it measures the server and not
// itself. WebSocket uses coder/websocket: a request sends a message and
// waits for a reply (optionally one containing Expect), or, in broadcast
// mode, only sends, while every message any connection receives is counted.
//
// A run always ends by itself: at the end of the schedule or duration, at
// Requests, or at the hard Deadline; cancelling ctx (Ctrl-C) ends it early
// with Interrupted set and everything measured so far. Targets outside the
// loopback range need AllowRemote.
package loadgen
