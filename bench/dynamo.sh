#!/usr/bin/env bash
# The Dynamo store next to etcd, in one run on this machine: a 3-process
# scalelab dynamo cluster (N=3, R=2, W=2, --sync batch, --engine $ENGINE) and a 3-member etcd
# cluster (etcd v3.7.3 built from its Go module, default durability: WAL
# fsync per commit, batched), both on loopback, in the closed model (CONNS
# virtual users): dynamo by `scalelab load` over HTTP, etcd by clientv3 over
# gRPC as its users drive it (bench/etcddriver, 3 connections, one per
# member) — with 256-byte values:
#
#   put   dynamo PUT /kv/r<round>-{{seq}}       etcd clientv3 Put (gRPC)
#   get   dynamo GET /kv/k{{rand}} (R=2)        etcd clientv3 Get (linearizable)
#   sget  dynamo GET /kv/k{{rand}}?r=1          etcd clientv3 Get WithSerializable
#
# Puts go to fresh keys: a blind write (no causal context) to an existing
# Dynamo key is, by design, a sibling of what is there, so a blind-overwrite
# load would measure sibling growth, not the store. Gets read the preloaded
# keys (one version each).
#
# The virtual users are split over the three nodes (members), as three
# generators side by side whose summaries are merged (exact percentiles).
# Dynamo is masterless: every node coordinates what it receives (it holds a
# replica of every key with 3 nodes and N=3); etcd followers forward writes
# to the leader. Rounds alternate the systems; the script prints every round,
# then the median and spread of ops/s and p99, and the dynamo/etcd ratio.
#
#   bench/dynamo.sh                        # 3 rounds × 10 s per system and operation
#   ROUNDS=5 DURATION=20s CONNS=64 bench/dynamo.sh
#   ENGINE=pebble OPS=put bench/dynamo.sh     # the log-structured engine instead of bbolt
#   PEER_TRANSPORT=http bench/dynamo.sh       # one HTTP POST per peer message instead of links
#
# Needs python3 and go (etcd is built from its Go module on first use); loopback only.
set -euo pipefail
source "$(dirname "$0")/lib/kvbench.sh"

BASE=${DYN_BASE:-1710} # nodes: HTTP on 17101-17103, gossip on 17105-17107, peers on 17108-17110
# Run as a real cluster runs: peers under a cluster key (mutual TLS, encrypted gossip).
# PEER_AUTH=off runs the nodes without a key (loopback demo mode), to
# measure what authentication costs.
KEYFLAG=(--cluster-key "$WORK/cluster.key")
[ "${PEER_AUTH:-on}" = off ] && KEYFLAG=()
"$SL" cluster-key >"$WORK/cluster.key"
ENGINE=${ENGINE:-bbolt}
PEER_TRANSPORT=${PEER_TRANSPORT:-link}
echo "== start 3 dynamo nodes (--sync batch, --engine $ENGINE, --peer-transport $PEER_TRANSPORT, peer auth ${PEER_AUTH:-on})"
for i in 1 2 3; do
	join=""
	[ "$i" != 1 ] && join="--join 127.0.0.1:${BASE}5"
	"$SL" dynamo node --id "n$i" --addr "127.0.0.1:${BASE}$i" --gossip "127.0.0.1:${BASE}$((i + 4))" \
		--peer-addr "127.0.0.1:$((${BASE}0 + i + 7))" "${KEYFLAG[@]}" \
		$join --data "$WORK/dyn$i" --sync batch --engine "$ENGINE" --peer-transport "$PEER_TRANSPORT" >"$WORK/dyn$i.log" 2>&1 &
	PIDS+=($!)
done
for _ in $(seq 1 150); do
	alive=$(curl -fs "http://127.0.0.1:${BASE}1/cluster" 2>/dev/null | grep -o '"state":"alive"' | wc -l || true)
	[ "$alive" = 3 ] && break
	sleep 0.2
done
[ "$alive" = 3 ] || { echo "dynamo cluster did not form"; tail -5 "$WORK"/dyn*.log; exit 1; }
echo "   dynamo: 3 alive"
start_etcd
echo "   dynamo: driven by \`scalelab load\` over HTTP/1.1 keep-alive, $CONNS virtual users split over the 3 nodes, closed loop"

sys_preload() {
	"$SL" load http --quiet --vus 32 --requests "$KEYS" -X PUT --body-file "$WORK/value" "http://127.0.0.1:${BASE}1/kv/k{{seq}}" >/dev/null
}
sys_put() { load "$WORK/o" "http://127.0.0.1:$BASE{N}/kv/r$1-{N}-{{seq}}" -X PUT --body-file "$WORK/value"; }
sys_get() { load "$WORK/o" "http://127.0.0.1:$BASE{N}/kv/k{{rand 0 $HI}}"; }
sys_sget() { load "$WORK/o" "http://127.0.0.1:$BASE{N}/kv/k{{rand 0 $HI}}?r=1"; }

run_rounds dynamo
