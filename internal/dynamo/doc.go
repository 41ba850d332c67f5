// Package dynamo will be the Dynamo-style key-value store (issue 4): always
// writable, eventually consistent, conflicts kept as siblings rather than
// silently lost. It is being built bottom-up, pure cores first, each in its
// own package with exhaustive tests:
//
//	ring/    consistent hashing with virtual nodes; preference lists; sloppy-quorum
//	         placements with hints; ownership shares; ring ranges (built)
//	vclock/  vector clocks, pruning with a documented bound, sibling reconciliation,
//	         causal-context encoding for X-Causal-Context (built)
//	quorum/  the coordinator's W-of-N and R-of-N decisions and read-repair targets,
//	         as a state machine with no IO (built)
//	store/   one node's durable versions in bbolt, --sync always|batch|none, ring-range
//	         scans for anti-entropy and hand-off (built)
//
// Still to come, in this order: the node (HTTP API /kv/{key} and /cluster,
// coordinator over an injectable transport, hinted handoff), membership with
// hashicorp/memberlist, Merkle-tree anti-entropy per ring range, range
// hand-off on ring changes, tombstone reaping, the fault-injecting in-process
// cluster and the randomized fault schedules, the real-process SIGKILL test,
// `scalelab dynamo node|get|put|del`, the 3-node cluster in `scalelab up`,
// docs/dynamo.md with the CAP experiment, and bench/dynamo.sh against etcd.
package dynamo
