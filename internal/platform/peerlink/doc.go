// Package peerlink carries node-to-node requests over one long-lived
// connection per peer: requests and answers travel as length-prefixed
// binary frames, many in flight at once, each matched to its answer by a
// number. It is the alternative to one HTTP/1.1 exchange per message,
// where a connection carries one request at a time, every request pays for
// a request line and headers to write and parse, and concurrency means
// more connections (and more TLS handshakes).
//
// # How a link is made
//
// A link starts as an HTTP request on the peer listener — `GET PATH` with
// `Upgrade: scalelab-link/1` — so it passes through the same door as every
// other peer message: mutual TLS under the cluster key, or loopback only
// without one (internal/platform/auth), and auth.Peers.Guard. The server
// answers 101 Switching Protocols, takes the connection over from the HTTP
// server and from then on reads frames. etcd's rafthttp streams are made
// the same way (an HTTP request whose body never ends); WebSocket too.
//
// # Frames
//
//	request   u32 length | u64 id | u32 timeout in ms (0: none) | payload
//	answer    u32 length | u64 id | payload
//
// length counts everything after itself. The timeout is what the caller
// has left: the server's handler runs under a context with that deadline,
// so work a caller gave up on stops there too. There is no cancel frame: a
// caller that stops waiting drops the answer when it comes.
//
// # Limits
//
// A peer holds the cluster key, but a bug or a corrupt node must still not
// take a node down. The server refuses (by closing the link) a frame over
// MaxFrame before reading it, serves at most MaxInFlight requests of one
// link at once — the link's reader waits for a slot, so a peer that sends
// faster than it is served is slowed down by TCP, not queued in memory —
// and keeps at most MaxLinks links. A link idle for IdleTimeout is closed;
// callers close theirs sooner, so a request never meets a link that the
// server is closing.
//
// # Writing
//
// Each side has one writer goroutine per link that takes frames from a
// queue and flushes when the queue is empty: under load many frames share
// one write system call (and one TLS record), with no timer.
package peerlink
