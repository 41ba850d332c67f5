# Shared by bench/dynamo.sh and bench/raftkv.sh: a 3-member etcd cluster
# as the anchor, the load (CONNS virtual users split over three nodes as
# three `scalelab load` generators, merged with exact percentiles), the
# rounds alternating the two systems, and the report (medians, spread,
# ratio). A script sources this, starts its own cluster, and defines
#   sys_put ROUND   sys_get   sys_preload
# each printing nothing but what `load` prints.
#
# etcd is driven the way its users drive it: clientv3 over gRPC
# (bench/etcddriver, CONNS requesters over 3 connections, one per member,
# closed loop, like etcd's own benchmark tool), at the newest release that
# builds from its Go module here (ETCD_VERSION, built once into a cache).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
KEYS=${KEYS:-100000}
ETCD_BASE=${ETCD_BASE:-2378} # members: clients on 23781-23783, peers on 23785-23787

ETCD_VERSION=${ETCD_VERSION:-v3.7.3}

. "$(dirname "${BASH_SOURCE[0]}")/need.sh"
for tool in python3 go curl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is missing"; exit 1; }
done

ETCD_BIN=$(need_go_build etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION") || exit 1

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab && go build -o "$WORK/etcddriver" ./bench/etcddriver)
SL="$WORK/scalelab"
ETCD="http://127.0.0.1:${ETCD_BASE}1"

# 256-byte values. The preloaded keys are k0…k(KEYS-1) for scalelab and
# key00000000… for etcd (the driver's names): the same number of keys;
# puts go to fresh keys on both.
head -c 256 /dev/zero | tr '\0' 'v' >"$WORK/value"
HI=$((KEYS - 1))
ETCD_ENDPOINTS="127.0.0.1:${ETCD_BASE}1,127.0.0.1:${ETCD_BASE}2,127.0.0.1:${ETCD_BASE}3"

start_etcd() {
	local cluster="e1=http://127.0.0.1:${ETCD_BASE}5,e2=http://127.0.0.1:${ETCD_BASE}6,e3=http://127.0.0.1:${ETCD_BASE}7"
	for i in 1 2 3; do
		"$ETCD_BIN" --name "e$i" --data-dir "$WORK/etcd$i" \
			--listen-client-urls "http://127.0.0.1:${ETCD_BASE}$i" --advertise-client-urls "http://127.0.0.1:${ETCD_BASE}$i" \
			--listen-peer-urls "http://127.0.0.1:${ETCD_BASE}$((i + 4))" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_BASE}$((i + 4))" \
			--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token scalelab-bench \
			>"$WORK/etcd$i.log" 2>&1 &
		PIDS+=($!)
	done
	for _ in $(seq 1 150); do
		curl -fs "$ETCD/health" 2>/dev/null | grep -q '"health":"true"' && { echo "   anchor: $("$ETCD_BIN" --version | head -1) (built from go.etcd.io/etcd/server/v3@$ETCD_VERSION), 3 members, default durability; driven by bench/etcddriver = clientv3 $(cd "$ROOT" && go list -m -f '{{.Version}}' go.etcd.io/etcd/client/v3) over gRPC: $CONNS requesters over 3 connections (one per member), closed loop, 256-byte values"; return; }
		sleep 0.2
	done
	echo "etcd cluster did not become healthy"; tail -5 "$WORK"/etcd*.log; exit 1
}

# load OUT URL_TEMPLATE ARGS…: {N} in the URL becomes 1, 2, 3 (one
# generator per node); prints "ops/s p99_ms requests 2xx errors".
load() {
	local out=$1 url=$2; shift 2
	local pids=() sums=()
	rm -rf "$out"
	for i in 1 2 3; do
		"$SL" load http --quiet --vus $((CONNS / 3)) --duration "$DURATION" --out "$out/$i" "$@" "${url//\{N\}/$i}" >/dev/null &
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
other = {k: v for k, v in s["status"].items() if not k.startswith("2")}
if other or s["errors"]:
    print(f'   not 2xx: {other} {s.get("errors_by_kind", {})}', file=sys.stderr)
PY
}

# driver ENDPOINTS ARGS…: bench/etcddriver (clientv3 over gRPC, CONNS
# requesters over 3 connections, one per member) against any cluster that
# speaks etcd's API; prints "ops/s p99_ms requests ok errors".
driver() { local eps=$1; shift; "$WORK/etcddriver" -endpoints "$eps" -conns 3 -keys "$KEYS" -value-size 256 "$@"; }
etcd_preload() { driver "$ETCD_ENDPOINTS" -op preload -clients 32 >/dev/null; }
etcd_put() { driver "$ETCD_ENDPOINTS" -op put -clients "$CONNS" -duration "$DURATION"; }
etcd_get() { driver "$ETCD_ENDPOINTS" -op get -clients "$CONNS" -duration "$DURATION"; }
etcd_sget() { driver "$ETCD_ENDPOINTS" -op get -serializable -clients "$CONNS" -duration "$DURATION"; }

# OPS: the operations compared, each a sys_OP and an etcd_OP: put (fresh
# keys), get (linearizable on etcd), sget (serializable on etcd).
OPS=${OPS:-put get sget}

# run_rounds NAME: preload both, then ROUNDS rounds alternating NAME and
# etcd, operation by operation, then the report.
run_rounds() {
	local name=$1 res="$WORK/results"
	echo "== preload: $KEYS keys each"
	sys_preload
	etcd_preload
	: >"$res"
	for r in $(seq 1 "$ROUNDS"); do
		for op in $OPS; do
			echo "round $r $name $op $("sys_$op" "$r")" | tee -a "$res"
			echo "round $r etcd $op $("etcd_$op")" | tee -a "$res"
		done
	done
	python3 - "$res" "$name" "$OPS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
name, ops = sys.argv[2], sys.argv[3].split()
def col(sys_, op, i):
    return [float(r[4 + i]) for r in rows if r[2] == sys_ and r[3] == op]
print("\n== medians over rounds (ops/s [min–max], p99 ms [min–max])")
for op in ops:
    for s in (name, "etcd"):
        ops_, p99 = col(s, op, 0), col(s, op, 1)
        print(f"{s:7} {op:4}: {statistics.median(ops_):9.0f} ops/s [{min(ops_):.0f}–{max(ops_):.0f}]   p99 {statistics.median(p99):7.2f} ms [{min(p99):.2f}–{max(p99):.2f}]")
    d, e = statistics.median(col(name, op, 0)), statistics.median(col("etcd", op, 0))
    dp, ep = statistics.median(col(name, op, 1)), statistics.median(col("etcd", op, 1))
    print(f"ratio {name}/etcd {op}: {d / e:.2f}× ops/s, p99 {dp / ep:.2f}× etcd's")
bad = [r for r in rows if r[7] != r[6] or r[8] != "0"]
if bad:
    print("rounds with failed requests (round system op ops/s p99 requests ok errors):", *[" ".join(r) for r in bad], sep="\n  ")
PY
}
