# Shared by bench/dynamo.sh and bench/raftkv.sh: a 3-member etcd cluster
# as the anchor, the load (CONNS virtual users split over three nodes as
# three `scalelab load` generators, merged with exact percentiles), the
# rounds alternating the two systems, and the report (medians, spread,
# ratio). A script sources this, starts its own cluster, and defines
#   sys_put ROUND   sys_get   sys_preload
# each printing nothing but what `load` prints.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
KEYS=${KEYS:-100000}
ETCD_BASE=${ETCD_BASE:-2378} # members: clients on 23781-23783, peers on 23785-23787

. "$(dirname "${BASH_SOURCE[0]}")/need.sh"
need etcd etcd-server
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
ETCD="http://127.0.0.1:${ETCD_BASE}1"

# 256-byte values: raw for scalelab, base64 in etcd's JSON (344 characters
# that decode to 256 bytes). etcd keys: "key" + 6 bytes, written as base64
# "a2V5" + 8 digits (digits are base64 characters), the same key space as
# the preloaded k0…k(KEYS-1); puts go to fresh keys "new" + 6 bytes.
head -c 256 /dev/zero | tr '\0' 'v' >"$WORK/value"
B64=$(head -c 256 /dev/zero | tr '\0' 'v' | base64 -w0)
HI=$((KEYS - 1))
EKEY="a2V5{{rand 10000000 $((10000000 + HI))}}"
NEWKEY="bmV3{{rand 10000000 99999999}}"

start_etcd() {
	local cluster="e1=http://127.0.0.1:${ETCD_BASE}5,e2=http://127.0.0.1:${ETCD_BASE}6,e3=http://127.0.0.1:${ETCD_BASE}7"
	for i in 1 2 3; do
		etcd --name "e$i" --data-dir "$WORK/etcd$i" \
			--listen-client-urls "http://127.0.0.1:${ETCD_BASE}$i" --advertise-client-urls "http://127.0.0.1:${ETCD_BASE}$i" \
			--listen-peer-urls "http://127.0.0.1:${ETCD_BASE}$((i + 4))" --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_BASE}$((i + 4))" \
			--initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token scalelab-bench \
			>"$WORK/etcd$i.log" 2>&1 &
		PIDS+=($!)
	done
	for _ in $(seq 1 150); do
		curl -fs "$ETCD/health" 2>/dev/null | grep -q '"health":"true"' && { echo "   etcd: $(etcd --version | head -1)"; return; }
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

etcd_preload() {
	"$SL" load http --quiet --vus 32 --requests "$KEYS" -X POST --body "{\"key\":\"$EKEY\",\"value\":\"$B64\"}" "$ETCD/v3/kv/put" >/dev/null
}
etcd_put() { load "$WORK/o" "http://127.0.0.1:$ETCD_BASE{N}/v3/kv/put" -X POST --body "{\"key\":\"$NEWKEY\",\"value\":\"$B64\"}"; }
etcd_get() { load "$WORK/o" "http://127.0.0.1:$ETCD_BASE{N}/v3/kv/range" -X POST --body "{\"key\":\"$EKEY\"}"; }

# run_rounds NAME: preload both, then ROUNDS rounds alternating NAME and
# etcd, then the report.
run_rounds() {
	local name=$1 res="$WORK/results"
	echo "== preload: $KEYS keys each"
	sys_preload
	etcd_preload
	: >"$res"
	for r in $(seq 1 "$ROUNDS"); do
		echo "round $r $name put $(sys_put "$r")" | tee -a "$res"
		echo "round $r $name get $(sys_get)" | tee -a "$res"
		echo "round $r etcd put $(etcd_put)" | tee -a "$res"
		echo "round $r etcd get $(etcd_get)" | tee -a "$res"
	done
	python3 - "$res" "$name" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
name = sys.argv[2]
def col(sys_, op, i):
    return [float(r[4 + i]) for r in rows if r[2] == sys_ and r[3] == op]
print("\n== medians over rounds (ops/s [min–max], p99 ms [min–max])")
for op in ("put", "get"):
    for s in (name, "etcd"):
        ops, p99 = col(s, op, 0), col(s, op, 1)
        print(f"{s:7} {op}: {statistics.median(ops):9.0f} ops/s [{min(ops):.0f}–{max(ops):.0f}]   p99 {statistics.median(p99):7.2f} ms [{min(p99):.2f}–{max(p99):.2f}]")
    d, e = statistics.median(col(name, op, 0)), statistics.median(col("etcd", op, 0))
    print(f"ratio {name}/etcd {op}s: {d / e:.2f}×")
bad = [r for r in rows if r[7] != r[6] or r[8] != "0"]
if bad:
    print("rounds with non-2xx answers or errors (round system op ops/s p99 requests 2xx errors):", *[" ".join(r) for r in bad], sep="\n  ")
PY
}
