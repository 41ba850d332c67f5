// Package auth decides who belongs: the peers of a cluster and the
// operators of its admin surface. It is the one mechanism every clustered
// system uses (raftkv, dynamo, and the workers, crawler nodes and backends
// still to come), so that a reader learns it once.
//
// # Peers: the cluster key and mutual TLS
//
// A cluster is the set of processes that hold one secret, the cluster key
// (a file named by --cluster-key or $SCALELAB_CLUSTER_KEY; `scalelab
// cluster-key` makes one). Peer traffic — Raft messages, replica RPC,
// gossip — travels on a listener of its own, never the client port, over
// mutual TLS 1.3:
//
//   - The cluster's certificate authority is derived from the key: an
//     Ed25519 key pair whose seed is HKDF-SHA256(key, "scalelab/peer-ca/v1").
//     Ed25519 signatures are deterministic, so every member builds the very
//     same CA certificate without any file being shared but the key.
//   - At each start a node makes a fresh leaf key pair and signs its own
//     certificate with that CA. It presents it as a server and as a client.
//   - Both ends require a certificate that chains to the CA. A process
//     without the key cannot finish the handshake, so it is refused before
//     it has sent one byte of HTTP: no body is read, nothing is parsed.
//
// Why derive certificates instead of asking for PEM files, as etcd does?
// One secret to distribute is one thing to get right; an operator who can
// copy a key file to each machine has a working, encrypted, mutually
// authenticated cluster. The cost is that every key holder is a CA: a
// member cannot be revoked without changing the key (rotate it by
// restarting the members with a new one). etcd's per-member certificates
// buy revocation and per-member identity at the price of a PKI; Consul's
// gossip keyring and Nomad's shared secret make the same choice as here.
//
// Gossip (memberlist) does not speak TLS; it is encrypted and
// authenticated with AES-256-GCM under GossipKey, a second key derived
// from the cluster key, so a process without it cannot join, and every
// gossip packet without a valid tag is dropped.
//
// Without a key a node still runs — demos and tests on one machine — but
// only on loopback: Peers.CheckAddr refuses a non-loopback peer address,
// the guard refuses non-loopback callers, and the node says so at start in
// one line. Loopback is not a security boundary against other processes on
// the same machine; the validation each system does before a message
// reaches its state machine is what protects it there.
//
// # The peer guard
//
// Guard wraps a peer handler with limits that hold even for authenticated
// peers (a bug, a corrupt node): a Content-Length over the limit is
// refused with 413 before the body is read, a chunked body is cut at the
// limit, and at most MaxConcurrent requests are served at once (503 for
// the rest: peers retry). Each refusal is counted in
// scalelab_peer_refused_total{reason}.
//
// # Operators: the admin token
//
// Operations that change what a cluster is or what it sells (membership,
// catalog prices, fault controls) need `Authorization: Bearer TOKEN`. The
// token is --admin-token / $SCALELAB_ADMIN_TOKEN, or, when none is given,
// a random one written once to DATA/admin-token (mode 0600): whoever can
// read the node's data directory is its operator. A missing token is 401,
// a wrong one 403, compared in constant time.
package auth
