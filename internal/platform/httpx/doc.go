// Package httpx is the HTTP plumbing every scalelab server shares, so that a
// system's own code is only its routes and its logic.
//
// What it gives:
//
//   - Server: an http.Server with read-header, read, write and idle timeouts,
//     a listener bound before serving (so tests can use "127.0.0.1:0" and ask
//     for the real address), and graceful shutdown when the context ends:
//     in-flight requests finish within a drain deadline, then the server closes.
//     Its listener caps open connections in all and per client address
//     (connlimit.go): past a cap a connection is accepted and closed at once,
//     and near the global cap idle keep-alive connections are closed to make
//     room, so idle connections cannot exhaust the descriptors. Optional TLS
//     (peer listeners).
//   - Ops: /healthz (the process is alive), /readyz (every dependency answers;
//     503 with the failing check otherwise) and /metrics (Prometheus).
//   - Middleware: panic recovery (a panic becomes a logged 500 with a JSON body,
//     never a dropped connection), a body-size limit, request logging with
//     log/slog at debug level, and Prometheus request metrics labelled by the
//     route pattern (not the raw path, which would explode cardinality).
//   - JSON helpers: WriteJSON, WriteError (apperr codes mapped to statuses in
//     one table, body {"error": "..."}), DecodeJSON (size-limited, strict).
//
// Request logging is at debug level on purpose: a redirect served in 20 µs
// must not pay for a formatted log line; errors (5xx) are logged at error.
package httpx
