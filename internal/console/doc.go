// Package console is the web console of `scalelab up`: one page that
// watches every system live and breaks it on purpose.
//
// Everything it shows is read from the running systems, never simulated:
// each system's request rate, 5xx rate and p50/p99 latency come from the
// process's own request metrics (httpx.Metrics.Snapshot, sampled once a
// second, percentiles from the histogram's bucket deltas); raftkv's nodes
// from their Raft status (role, leader, term, commit and applied index),
// with a timeline of leader changes; dynamo's ring from a node's view of
// it (arcs by owner) and each node's own member states and counters; the
// shop's breakers and its in-process downstream services' faults. A
// server-sent-event stream pushes the state once a second.
//
// The shortener, albums, shop and chat panels (assets/panels.js) work the
// other way round: the page calls each system's own public API on the same
// origin — make a link and click it, upload an album and like it, fill a
// cart and check out, chat in an embedded chat page — and charts what the
// system then reports, so a learner sees a click cross the broker into the
// SQL counts, or a stalled payment service open a breaker.
//
// ForOne is the same page for one `<system> serve` at /ui/; ForNode for
// one cluster node (`dynamo node`, `raftkv node`) drawn from the node's
// own view, with no fault buttons, load or experiments (State.Controls).
//
// The fault buttons drive the same in-process clusters through the
// methods their systems export for it (raftkv: stop, restart, isolate,
// heal a node; dynamo: partition, heal, crash, recover; shop: stall and
// release its in-process inventory or payment service). They are admin
// operations: they need the admin token. The page asks for it once per
// tab and holds it in the tab's sessionStorage, never in a cookie.
//
// The mapreduce panel works like the shortener's: it calls the
// coordinator's own API (generate a corpus, submit a job, list workers and
// jobs) and shows the newest job's task timeline as the SVG the
// coordinator draws.
//
// The page is plain HTML and JavaScript embedded with go:embed; charts use
// uPlot (1.6.32, MIT, assets/LICENSE-uPlot), vendored so that the console
// works without internet and `go run ./cmd/scalelab up` needs nothing but Go.
package console
