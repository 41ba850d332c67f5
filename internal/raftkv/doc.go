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
// To come: the HTTP API with forwarding to
// the leader, the client with leader discovery and deduplicated retries,
// membership changes and leadership transfer, the Porcupine-checked fault
// schedules, `scalelab raftkv node|member|check`, the cluster in `up`,
// docs/raftkv.md and bench/raftkv.sh against etcd.
package raftkv
