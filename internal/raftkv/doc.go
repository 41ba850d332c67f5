// Package raftkv is a Raft-replicated, linearizable key-value store: the CP
// half of the key-value story, built the way etcd, CockroachDB and TiKV
// build it. The Raft algorithm is go.etcd.io/raft/v3, a deterministic state
// machine that decides and does no IO; everything around it is here.
// docs/raftkv.md has the user's manual and the measurements.
//
// # The Ready loop
//
// One goroutine (Node.run) owns the raft.Node. It ticks Raft every
// TickInterval and, for each Ready, does in this order what etcd raft asks
// of its caller:
//
//  1. Install an incoming snapshot: restore the kv state from it, write it
//     to the WAL, apply it to the MemoryStorage.
//  2. Persist the HardState and the new entries (WAL, fsync unless
//     Config.Sync is off), then append them to the MemoryStorage.
//  3. Only then send the messages: a follower must not acknowledge, and a
//     candidate must not vote, on state it has not stored.
//  4. Answer the ReadIndex requests whose index Raft has confirmed.
//  5. Apply the committed entries: commands to the kv store (waking the
//     proposer), membership changes to Raft (ApplyConfChange) and the
//     address book.
//  6. Start a snapshot every SnapshotEvery applied entries (and after a
//     membership change) in the background, paced to SnapshotDuty of the
//     time so that it leaves the cores and the disk to the loop; the log
//     is compacted when the snapshot file is durable.
//  7. Advance.
//
// A failure to persist stops the loop: a node that cannot store must not
// acknowledge.
//
// # What each file owns
//
//	node.go       the Ready loop: persist, send, apply (the seven duties)
//	requests.go   proposals waiting for their result, ReadIndex reads
//	snapshot.go   taking snapshots off the loop, installing received ones
//	pacer.go      the duty cycle a background snapshot works to
//	raftlog.go    etcd raft's logger on log/slog
//	guard.go      what stands between the peer port and Raft: every peer
//	              message is checked against this node's state (sender,
//	              term, commit, appends over committed entries, membership
//	              entries, snapshots) and dropped and counted when it cannot
//	              be right — Raft panics on such states, it does not refuse
//	peer.go       the peer surface: PeerTransport (batches of messages
//	              over one framed link per peer, internal/platform/peerlink,
//	              or one POST each; mutual TLS under the cluster key) and
//	              the peer handler
//	members.go    the address book of peer addresses, the membership rule
//	              (etcd's strict reconfiguration check) and membership changes
//	http.go       the client HTTP API; membership behind the admin token
//	etcdapi.go    etcd's v3 KV API over gRPC (--grpc-addr), with etcd's own
//	              generated types, so etcdctl and clientv3 programs work
//	              unchanged: Range, Put, DeleteRange, Txn (compare-and-swap
//	              on value, version, create or mod revision), linearizable
//	              by default and serializable on request; writes and
//	              transactions are one log entry each, read-only
//	              transactions a ReadIndex round; leases and watches answer
//	              Unimplemented, and a read at an old revision answers
//	              "compacted" (the store keeps no history)
//	network.go    an in-process transport that blocks, delays, reorders,
//	              loses: the fault schedules run on it
//	check.go, checker.go  `scalelab experiment run linearizability` (real processes, faults,
//	              a Porcupine verdict) and the Porcupine model
//	cmd.go, system.go, client/  the CLI, the `up` cluster, the Go client
//	kv/           the replicated state machine: keys in a B-tree (ordered
//	              ranges; O(1) copy-on-write clones, so a snapshot never
//	              copies the store on the apply path), etcd's revisions and
//	              versions, compare-and-set, deletes, etcd transactions,
//	              exactly-once retries through a table of each client's last
//	              request, deterministic snapshots (pure)
//	wal/          the durable log: segmented records with CRCs, torn tails
//	              cut on recovery, snapshot files and compaction
//
// # Trust
//
// Peers authenticate with the cluster key (internal/platform/auth): without
// it a process cannot open the peer port, and without a key at all a node
// serves peers on loopback only. The guard runs in both modes; a message
// that passes it comes from a member or from a process on this machine
// that speaks Raft, and can still do what a member can — authentication is
// what keeps forgers out, the guard is what keeps a node alive.
package raftkv
