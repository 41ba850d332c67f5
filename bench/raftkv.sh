#!/usr/bin/env bash
# The Raft key-value store next to etcd, in one run on this machine, both
# driven by the same program the way etcd's users drive etcd: clientv3 over
# gRPC (bench/etcddriver: CONNS requesters over 3 connections, one per
# member, closed loop, 256-byte values). raftkv serves etcd's v3 KV API on
# --grpc-addr, so the driver cannot tell the two apart.
#
#   raftkv  3 `scalelab raftkv node` processes, fsync on, peers under a
#           cluster key (mutual TLS)
#   etcd    3 members, etcd ETCD_VERSION built from its Go module, default
#           durability (WAL fsync per commit, batched)
#
#   put   clientv3 Put of a fresh key
#   get   clientv3 Get of a preloaded key, linearizable (both: ReadIndex)
#   sget  clientv3 Get WithSerializable (the member's own state)
#
# Both forward what a follower receives to the leader (raftkv: Raft itself
# forwards proposals and ReadIndex requests). Rounds alternate the systems;
# the script prints every round, the median and spread of ops/s and p99,
# and the raftkv/etcd ratios.
#
#   bench/raftkv.sh                        # 3 rounds × 10 s per system and operation
#   ROUNDS=5 DURATION=20s CONNS=63 bench/raftkv.sh   (also KEYS, OPS, RAFT_BASE, ETCD_BASE)
#   KEYS=300000 OPS=put bench/raftkv.sh    # put latency on a bigger store
#   RAFT_ARGS="--max-inflight 1" bench/raftkv.sh     (extra node flags: pipelining off)
#   PEER_TRANSPORT=http bench/raftkv.sh               (one POST per batch instead of links)
#
# Needs python3 and go (etcd is built from its Go module on first use); loopback only.
set -euo pipefail
source "$(dirname "$0")/lib/kvbench.sh"

BASE=${RAFT_BASE:-1730} # nodes: HTTP on 17301-17303, Raft peers on 17305-17307, etcd API on 17308-17310
# Run as a real cluster runs: peers under a cluster key (mutual TLS).
# PEER_AUTH=off runs the nodes without a key (loopback demo mode), to
# measure what authentication costs.
KEYFLAG=(--cluster-key "$WORK/cluster.key")
[ "${PEER_AUTH:-on}" = off ] && KEYFLAG=()
"$SL" cluster-key >"$WORK/cluster.key"
PEER_TRANSPORT=${PEER_TRANSPORT:-link}
echo "== start 3 raftkv nodes (fsync on, --peer-transport $PEER_TRANSPORT, peer auth ${PEER_AUTH:-on})"
PEERS="1=127.0.0.1:${BASE}5,2=127.0.0.1:${BASE}6,3=127.0.0.1:${BASE}7"
for i in 1 2 3; do
	"$SL" raftkv node --id "$i" --addr "127.0.0.1:${BASE}$i" --peer-addr "127.0.0.1:${BASE}$((i + 4))" \
		--grpc-addr "127.0.0.1:$((${BASE}0 + i + 7))" --peers "$PEERS" --data "$WORK/raft$i" --peer-transport "$PEER_TRANSPORT" "${KEYFLAG[@]}" ${RAFT_ARGS:-} >"$WORK/raft$i.log" 2>&1 &
	PIDS+=($!)
done
for _ in $(seq 1 150); do
	curl -fs "http://127.0.0.1:${BASE}1/v1/cluster" 2>/dev/null | grep -q '"leader":[1-9]' && break
	sleep 0.2
done
curl -fs "http://127.0.0.1:${BASE}1/v1/cluster" | grep -q '"leader":[1-9]' || { echo "raftkv elected no leader"; tail -5 "$WORK"/raft*.log; exit 1; }
echo "   raftkv: leader elected"
start_etcd

RAFT_ENDPOINTS="127.0.0.1:${BASE}8,127.0.0.1:${BASE}9,127.0.0.1:$((${BASE}0 + 10))"
echo "   raftkv: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), driven by the same clientv3 driver through its etcd API"
sys_preload() { driver "$RAFT_ENDPOINTS" -op preload -clients 32 >/dev/null; }
sys_put() { driver "$RAFT_ENDPOINTS" -op put -clients "$CONNS" -duration "$DURATION"; }
sys_get() { driver "$RAFT_ENDPOINTS" -op get -clients "$CONNS" -duration "$DURATION"; }
sys_sget() { driver "$RAFT_ENDPOINTS" -op get -serializable -clients "$CONNS" -duration "$DURATION"; }

run_rounds raftkv
