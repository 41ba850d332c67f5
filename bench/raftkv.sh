#!/usr/bin/env bash
# The Raft key-value store next to etcd, in one run on this machine: a
# 3-process `scalelab raftkv` cluster (fsync on) and a 3-member etcd cluster
# (Debian's etcd-server, default durability), both on loopback, driven by
# the same client — `scalelab load` in the closed model, CONNS virtual users
# split over the three nodes (members) and merged — with 256-byte values:
#
#   puts  raftkv PUT /v1/kv/r<round>-<node>-{{seq}}     etcd POST /v3/kv/put   (JSON gateway)
#   gets  raftkv GET /v1/kv/k{{rand}} (ReadIndex)        etcd POST /v3/kv/range (linearizable)
#
# Both forward what a follower receives to the leader (raftkv: Raft itself
# forwards proposals and ReadIndex requests). Rounds alternate the systems;
# the script prints every round, the median and spread of ops/s and p99,
# and the raftkv/etcd ratio.
#
#   bench/raftkv.sh                        # 3 rounds × 10 s per system and operation
#   ROUNDS=5 DURATION=20s CONNS=63 bench/raftkv.sh
#
# Needs etcd (apt-get install etcd-server), python3 and go; loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
KEYS=${KEYS:-100000}
DYN_BASE=${DYN_BASE:-1730}   # nodes: HTTP on 17301-17303, Raft peers on 17305-17307
ETCD_BASE=${ETCD_BASE:-2378} # members: clients on 23781-23783, peers on 23785-23787

if ! command -v etcd >/dev/null; then
	echo "== installing etcd-server (Debian)"
	if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
	$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >/dev/null
fi
for tool in etcd python3 go curl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing"; exit 1; }
done

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab)
SL="$WORK/scalelab"

echo "== start 3 raftkv nodes (fsync on) and 3 etcd members"
PEERS="1=127.0.0.1:${DYN_BASE}5,2=127.0.0.1:${DYN_BASE}6,3=127.0.0.1:${DYN_BASE}7"
for i in 1 2 3; do
	"$SL" raftkv node --id "$i" --addr "127.0.0.1:${DYN_BASE}$i" --peer-addr "127.0.0.1:${DYN_BASE}$((i + 4))" \
		--peers "$PEERS" --data "$WORK/raft$i" >"$WORK/raft$i.log" 2>&1 &
	PIDS+=($!)
done
CLUSTER="e1=http://127.0.0.1:${ETCD_BASE}5,e2=http://127.0.0.1:${ETCD_BASE}6,e3=http://127.0.0.1:${ETCD_BASE}7"
for i in 1 2 3; do
	etcd --name "e$i" --data-dir "$WORK/etcd$i" \
		--listen-client-urls "http://127.0.0.1:${ETCD_BASE}$i" --advertise-client-urls "http://127.0.0.1:${ETCD_BASE}$i" \
		--listen-peer-urls "http://127.0.0.1:${ETCD_BASE}$((i + 4))" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_BASE}$((i + 4))" \
		--initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token scalelab-bench \
		>"$WORK/etcd$i.log" 2>&1 &
	PIDS+=($!)
done
RKV="http://127.0.0.1:${DYN_BASE}1"
ETCD="http://127.0.0.1:${ETCD_BASE}1"
for _ in $(seq 1 150); do
	alive=$(curl -fs "$RKV/v1/cluster" 2>/dev/null | grep -o '"leader":[1-9]' | wc -l || true)
	healthy=$(curl -fs "$ETCD/health" 2>/dev/null | grep -c '"health":"true"' || true)
	[ "$alive" = 1 ] && [ "$healthy" = 1 ] && break
	sleep 0.2
done
[ "$alive" = 1 ] || { echo "raftkv cluster elected no leader"; tail -5 "$WORK"/raft*.log; exit 1; }
[ "$healthy" = 1 ] || { echo "etcd cluster did not become healthy"; tail -5 "$WORK"/etcd*.log; exit 1; }
echo "   raftkv: leader elected; etcd: $(etcd --version | head -1)"

# 256-byte values: raw for raftkv, base64 in etcd's JSON (344 characters
# that decode to 256 bytes). etcd keys: "key" + 6 bytes, written as base64
# "a2V5" + 8 digits (digits are base64 characters), the same key space.
head -c 256 /dev/zero | tr '\0' 'v' >"$WORK/value"
B64=$(head -c 256 /dev/zero | tr '\0' 'v' | base64 -w0)
HI=$((KEYS - 1))
EKEY="a2V5{{rand 10000000 $((10000000 + HI))}}"
NEWKEY="bmV3{{rand 10000000 99999999}}" # "new" + 6 bytes: fresh keys, like raftkv's r<round>-<node>-<seq>

# load OUT URL_TEMPLATE ARGS…: CONNS virtual users split over the three
# nodes (or members) — {N} in the URL becomes each one's port — as three
# generators side by side, merged into one summary with exact percentiles.
load() {
	local out=$1 url=$2; shift 2
	local pids=() sums=()
	rm -rf "$out"
	for i in 1 2 3; do
		local u=${url//\{N\}/$i}
		"$SL" load http --quiet --vus $((CONNS / 3)) --duration "$DURATION" --out "$out/$i" "$@" "$u" >/dev/null &
		pids+=($!)
		sums+=("$out/$i/summary.json")
	done
	for p in "${pids[@]}"; do wait "$p"; done
	"$SL" load merge --out "$out/all" "${sums[@]}" >/dev/null
	python3 - "$out/all/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ok = sum(v for k, v in s["status"].items() if k.startswith("2"))
print(f'{s["rps"]:.0f} {s["latency_ms"]["p99"]:.2f} {s["requests"]} {ok} {s["errors"]}')
PY
}

echo "== preload: $KEYS keys each"
"$SL" load http --quiet --vus 32 --requests "$KEYS" -X PUT --body-file "$WORK/value" "$RKV/v1/kv/k{{seq}}" >/dev/null
# etcd: the same number of puts over the key space (random: most keys exist)
"$SL" load http --quiet --vus 32 --requests "$KEYS" -X POST --body "{\"key\":\"$EKEY\",\"value\":\"$B64\"}" "$ETCD/v3/kv/put" >/dev/null

RES="$WORK/results"
: >"$RES"
for r in $(seq 1 "$ROUNDS"); do
	for sys in raftkv etcd; do
		if [ $sys = raftkv ]; then
			put=$(load "$WORK/o" "http://127.0.0.1:$DYN_BASE{N}/v1/kv/r$r-{N}-{{seq}}" -X PUT --body-file "$WORK/value")
			get=$(load "$WORK/o" "http://127.0.0.1:$DYN_BASE{N}/v1/kv/k{{rand 0 $HI}}")
		else
			put=$(load "$WORK/o" "http://127.0.0.1:$ETCD_BASE{N}/v3/kv/put" -X POST --body "{\"key\":\"$NEWKEY\",\"value\":\"$B64\"}")
			get=$(load "$WORK/o" "http://127.0.0.1:$ETCD_BASE{N}/v3/kv/range" -X POST --body "{\"key\":\"$EKEY\"}")
		fi
		echo "round $r $sys put $put" | tee -a "$RES"
		echo "round $r $sys get $get" | tee -a "$RES"
	done
done

python3 - "$RES" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def col(sys_, op, i):
    return [float(r[4 + i]) for r in rows if r[2] == sys_ and r[3] == op]
print("\n== medians over rounds (ops/s [min–max], p99 ms [min–max])")
for op in ("put", "get"):
    for s in ("raftkv", "etcd"):
        ops, p99 = col(s, op, 0), col(s, op, 1)
        print(f"{s:7} {op}: {statistics.median(ops):9.0f} ops/s [{min(ops):.0f}–{max(ops):.0f}]   p99 {statistics.median(p99):7.2f} ms [{min(p99):.2f}–{max(p99):.2f}]")
    d, e = statistics.median(col("raftkv", op, 0)), statistics.median(col("etcd", op, 0))
    print(f"ratio raftkv/etcd {op}s: {d / e:.2f}×")
bad = [r for r in rows if r[7] != r[6] or r[8] != "0"]
if bad:
    print("rounds with non-2xx answers or errors (round system op ops/s p99 requests 2xx errors):", *[" ".join(r) for r in bad], sep="\n  ")
PY
