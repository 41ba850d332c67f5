// Package raftkv will be the Raft-replicated, linearizable key-value store
// (issue 5): the CP half of the key-value story, built the way etcd,
// CockroachDB and TiKV build it — the Raft algorithm from go.etcd.io/raft/v3
// (a pure state machine: it decides, the node does the IO), and around it
// the Ready loop, the transport, the durable log and snapshots, the
// key-value state machine, linearizable reads (ReadIndex) and membership
// changes.
//
// Built so far, bottom-up:
//
//	kv/   the replicated state machine: revisions, compare-and-set, deletes,
//	      exactly-once retries through a session table, deterministic
//	      snapshots (pure, tested by replaying random logs)
//	wal/  the durable log: segmented records with CRCs, torn tails cut on
//	      recovery, snapshot files and compaction
//	node.go     the Ready loop (persist, send, apply), proposals waiting for
//	            their result, ReadIndex reads, snapshots every N entries
//	network.go  an in-process transport that blocks, delays, reorders, loses
//
//	api.go, transport.go, cmd.go, system.go, client/  the HTTP API, the
//	            node-to-node transport, `scalelab raftkv node`, the `up`
//	            cluster and the Go client
//	checker.go  the Porcupine model the fault schedules are checked against
//
// To come: membership changes (--join, `scalelab raftkv member`),
// `scalelab raftkv check` against real processes, docs/raftkv.md.
package raftkv
