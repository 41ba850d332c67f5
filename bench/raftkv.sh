#!/usr/bin/env bash
# The Raft key-value store next to etcd, in one run on this machine: a
# 3-process `scalelab raftkv` cluster (fsync on) and a 3-member etcd cluster
# (etcd v3.7.3 built from its Go module, default durability), both on loopback, driven by
# in the closed model — raftkv by `scalelab load`, CONNS virtual users split
# over the three nodes and merged; etcd by clientv3 over gRPC, as its users
# drive it (bench/etcddriver: CONNS requesters over 3 connections, one per
# member) — with 256-byte values:
#
#   puts  raftkv PUT /v1/kv/r<round>-<node>-{{seq}}     etcd clientv3 Put (gRPC)
#   gets  raftkv GET /v1/kv/k{{rand}} (ReadIndex)        etcd clientv3 Get (linearizable)
#
# Both forward what a follower receives to the leader (raftkv: Raft itself
# forwards proposals and ReadIndex requests). Rounds alternate the systems;
# the script prints every round, the median and spread of ops/s and p99,
# and the raftkv/etcd ratio.
#
#   bench/raftkv.sh                        # 3 rounds × 10 s per system and operation
#   ROUNDS=5 DURATION=20s CONNS=63 bench/raftkv.sh   (also KEYS, RAFT_BASE, ETCD_BASE)
#   RAFT_ARGS="--max-inflight 1" bench/raftkv.sh     (extra node flags: pipelining off)
#
# Needs python3 and go (etcd is built from its Go module on first use); loopback only.
set -euo pipefail
source "$(dirname "$0")/lib/kvbench.sh"

BASE=${RAFT_BASE:-1730} # nodes: HTTP on 17301-17303, Raft peers on 17305-17307
# Run as a real cluster runs: peers under a cluster key (mutual TLS).
# PEER_AUTH=off runs the nodes without a key (loopback demo mode), to
# measure what authentication costs.
KEYFLAG=(--cluster-key "$WORK/cluster.key")
[ "${PEER_AUTH:-on}" = off ] && KEYFLAG=()
"$SL" cluster-key >"$WORK/cluster.key"
echo "== start 3 raftkv nodes (fsync on, peer auth ${PEER_AUTH:-on})"
PEERS="1=127.0.0.1:${BASE}5,2=127.0.0.1:${BASE}6,3=127.0.0.1:${BASE}7"
for i in 1 2 3; do
	"$SL" raftkv node --id "$i" --addr "127.0.0.1:${BASE}$i" --peer-addr "127.0.0.1:${BASE}$((i + 4))" \
		--peers "$PEERS" --data "$WORK/raft$i" "${KEYFLAG[@]}" ${RAFT_ARGS:-} >"$WORK/raft$i.log" 2>&1 &
	PIDS+=($!)
done
for _ in $(seq 1 150); do
	curl -fs "http://127.0.0.1:${BASE}1/v1/cluster" 2>/dev/null | grep -q '"leader":[1-9]' && break
	sleep 0.2
done
curl -fs "http://127.0.0.1:${BASE}1/v1/cluster" | grep -q '"leader":[1-9]' || { echo "raftkv elected no leader"; tail -5 "$WORK"/raft*.log; exit 1; }
echo "   raftkv: leader elected"
start_etcd

sys_preload() {
	"$SL" load http --quiet --vus 32 --requests "$KEYS" -X PUT --body-file "$WORK/value" "http://127.0.0.1:${BASE}1/v1/kv/k{{seq}}" >/dev/null
}
sys_put() { load "$WORK/o" "http://127.0.0.1:$BASE{N}/v1/kv/r$1-{N}-{{seq}}" -X PUT --body-file "$WORK/value"; }
sys_get() { load "$WORK/o" "http://127.0.0.1:$BASE{N}/v1/kv/k{{rand 0 $HI}}"; }

run_rounds raftkv
