// Package dynamo is a Dynamo-style key-value store (the design of Amazon's
// Dynamo paper, Riak and Cassandra): always writable, eventually
// consistent, and conflicts kept as siblings rather than silently lost.
// `scalelab dynamo node` runs one node; `scalelab up` runs three in one
// process; docs/dynamo.md has the design discussion and the measurements.
//
// The pure cores live in their own packages, each exhaustively tested:
//
//	ring/    consistent hashing with virtual nodes; preference lists; sloppy-quorum placements
//	vclock/  vector clocks and dotted versions: which versions survive a write; causal contexts
//	quorum/  the coordinator's W-of-N and R-of-N decisions and read-repair targets
//	merkle/  fixed-shape hash trees over ring ranges, for anti-entropy
//	store/   one node's versions in bbolt or Pebble (--engine, --sync), hints, ring-range scans
//
// This package is the node, the IO around them:
//
//   - coordinator.go: a write is coordinated by the first healthy node of
//     the key's preference list (others forward it there); it stamps the
//     version with the next dot of its own, stores it, sends it to the
//     other placements and answers once W acknowledged. A placement that
//     does not answer is replaced within the same request by the next
//     healthy node, which keeps the write as a hint (sloppy quorum). A read
//     asks R placements (this node first when it holds one), the others
//     after a failure or SpeculativeRead without a quorum, answers once R
//     did, and repairs the stale replicas it heard from in the background.
//   - maintenance.go: hinted hand-off, Merkle-tree anti-entropy per ring
//     range, range hand-off when the ring changes (a node deletes a key
//     only after every new replica acknowledged it), tombstone reaping.
//   - membership.go, gossip.go: who is in the cluster — hashicorp/memberlist
//     between processes, a static list in one process — and each node's own
//     failure detector, which routes around a peer that stopped answering.
//   - wire.go, peer.go, network.go, rpc.go: node-to-node messages, between
//     processes over one framed link per peer (internal/platform/peerlink;
//     one HTTP POST each with --peer-transport http) — on a peer listener
//     of their own, mutual TLS under the cluster key
//     (internal/platform/auth), never the client port — or through an
//     in-process Network that can partition (both ways or one way), delay,
//     lose and crash — the fault tests and the CAP experiment run on it.
//   - contexts.go: what a coordinator checks before it stamps a write. A
//     client's causal context is a claim, and a false one (a counter at
//     2^64−1) would make the key drop every later write; each entry is
//     checked against this node's own counters, its replica, or the
//     actor's node (opIssued), and refused (400) or clamped. Siblings and
//     bytes per key are capped there too (MaxSiblings, MaxKeyBytes).
//   - http.go, client/, cmd.go, system.go, cap.go: the HTTP API (Riak-like,
//     with X-Causal-Context), the Go client, the CLI, the `up` cluster and
//     `scalelab experiment run cap`.
//
// Trade-offs worth knowing before changing anything: versions are dotted
// version vectors with exact contexts (see vclock), which is what makes
// "a write replaces exactly what its reader saw" true even for blind
// writes and through stand-ins; dead nodes stay on the ring for DeadAfter
// so a crash and restart moves no data; a delete concurrent with an update
// loses to it on read; reaped tombstones can be resurrected by a replica
// that was away for longer than TombstoneGrace.
package dynamo
