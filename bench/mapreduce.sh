#!/usr/bin/env bash
# MapReduce's word count beside the programs people would otherwise run,
# on one generated corpus (SIZE, default 1 GiB: Zipf-distributed words,
# deterministic from its seed, `scalelab mapreduce corpus`), in one run,
# rounds interleaved:
#   mr-1, mr-2, mr-4  a `scalelab mapreduce coordinator` and 1, 2 or 4
#                     `scalelab mapreduce worker` processes over a NATS
#                     server of the run's own and a shared blob directory;
#                     64 MiB splits, R=4, the combiner on
#   mr-kill           3 workers, one killed with SIGKILL once two map tasks
#                     are done (the lease, LEASE, moves its task)
#   mr-3              3 workers, no failure: mr-kill's reference
#   seq               bench/mrsequential: one Go process, a map of counts
#                     (MIT 6.5840's mrsequential, streaming)
#   sort              tr -cs A-Za-z '\n' | LC_ALL=C sort | uniq -c
#   dask              a python3-dask bag: read_text → str.split → flatten →
#                     frequencies, on dask's default (multiprocessing)
#                     scheduler, Debian's package
# Every output is normalised to "word count" lines in byte order and
# hashed: all must be identical, in every round.
#
#   bench/mapreduce.sh                         # ROUNDS=3, SIZE=1GiB
#   ROUNDS=1 SIZE=256MiB SKIP="sort dask" bench/mapreduce.sh
#
# Prints each round, the medians with their spread (min–max) in MB/s, and
# the ratios against the goals: mr-2 ≥ 0.8× seq, mr-2 ≥ 3× dask, mr-kill ≤
# 1.25× mr-3. Installs nats-server and python3-dask when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
SIZE=${SIZE:-1GiB}
SPLIT=${SPLIT:-64MiB}
REDUCERS=${REDUCERS:-4}
LEASE=${LEASE:-5s}
SKIP=${SKIP:-}
PORT=${PORT:-18500}
NATS_PORT=$((PORT + 99))
TOKEN=bench-mapreduce-token-0123456789abcdef
DASK_PY=${DASK_PY:-/usr/bin/python3} # Debian's python, where python3-dask installs

. "$ROOT/bench/lib/need.sh"
need nats-server nats-server
"$DASK_PY" -c 'import dask.bag' 2>/dev/null || {
	echo "== installing python3-dask (apt-get)"
	sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-dask >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-dask >/dev/null 2>&1; }
	"$DASK_PY" -c 'import dask.bag' || { echo "bench: python3-dask could not be installed"; exit 1; }
}
command -v go >/dev/null || { echo "bench: go is missing (see README)"; exit 1; }

WORK=${WORK:-$(mktemp -d)}
CORPUS=${CORPUS:-$WORK/corpus}
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	pkill -f "$WORK/scalelab" 2>/dev/null || true # a round's cluster runs in a subshell
	pkill -f "$WORK/run/nats" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$WORK/run" "$WORK/out"
	[ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab && go build -o "$WORK/mrsequential" ./bench/mrsequential)
SL=$WORK/scalelab
if [ ! -d "$CORPUS" ]; then
	echo "== generating the corpus ($SIZE, seed 1)"
	"$SL" mapreduce corpus --out "$CORPUS" --size "$SIZE" --seed 1
fi
BYTES=$(cat "$CORPUS"/*.txt | wc -c)
echo "corpus: $BYTES bytes in $(ls "$CORPUS" | wc -l) files"

cat >"$WORK/dask_wc.py" <<'EOF'
import sys
import dask.bag as db


def main():
    files, out = sys.argv[1:-1], sys.argv[-1]
    counts = db.read_text(files, blocksize="64MiB").str.split().flatten().frequencies().compute()
    with open(out, "w") as f:
        for word, n in counts:
            f.write(f"{word} {n}\n")


if __name__ == "__main__":  # dask's process pool spawns interpreters that import this file
    main()
EOF

now() { date +%s.%N; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f\n", a - b}'; }
# norm FILE: "word count" lines in byte order, hashed.
norm() { LC_ALL=C sort "$1" | sha256sum | cut -c1-16; }

start_cluster() { # start_cluster WORKERS: a fresh NATS, coordinator and workers
	local n=$1 run=$WORK/run
	rm -rf "$run" && mkdir -p "$run"
	nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$run/nats" >"$run/nats.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/$NATS_PORT) 2>/dev/null && break; sleep 0.1; done
	local common=(--broker "nats://127.0.0.1:$NATS_PORT" --blob "file://$run/blobs" --admin-token "$TOKEN")
	"$SL" mapreduce coordinator --addr "127.0.0.1:$PORT" --data "$run/coord" --lease "$LEASE" "${common[@]}" >"$run/coord.log" 2>&1 &
	PIDS+=($!)
	WORKERS=()
	for i in $(seq 1 "$n"); do
		"$SL" mapreduce worker --addr "127.0.0.1:$((PORT + i))" --data "$run/w$i" --worker-id "w$i" --tmp "$run" "${common[@]}" >"$run/w$i.log" 2>&1 &
		PIDS+=($!)
		WORKERS+=($!)
	done
	for p in $(seq 0 "$n"); do
		for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$((PORT + p))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	done
}

stop_cluster() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	PIDS=()
}

# mr NAME WORKERS [kill]: one job; prints seconds and leaves the output in $WORK/out/NAME
mr() {
	local name=$1 n=$2 kill=${3:-}
	start_cluster "$n"
	local base=http://127.0.0.1:$PORT
	local id
	id=$("$SL" mapreduce submit --coordinator "$base" --admin-token "$TOKEN" --input "$CORPUS" --reducers "$REDUCERS" --split-size "$SPLIT" | awk '{print $2}' | tr -d :)
	local killed=""
	while :; do
		local st
		st=$(curl -fs "$base/api/v1/jobs/$id")
		local state done_maps
		state=$(echo "$st" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
		done_maps=$(echo "$st" | python3 -c 'import json,sys; print(json.load(sys.stdin)["maps_done"])')
		if [ -n "$kill" ] && [ -z "$killed" ] && [ "$done_maps" -ge 2 ]; then
			kill -9 "${WORKERS[0]}" && killed=1
		fi
		case $state in done | failed) break ;; esac
		sleep 0.2
	done
	[ "$state" = done ] || { echo "bench: job $id $state"; tail -20 "$WORK/run/coord.log"; exit 1; }
	curl -fs "$base/api/v1/jobs/$id/output" >"$WORK/out/$name"
	curl -fs "$base/api/v1/jobs/$id" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.3f %d %d" % (j["seconds"], j["counters"]["attempts"], j["counters"]["retries"]))' >"$WORK/out/$name.meta"
	stop_cluster
	cut -d' ' -f1 "$WORK/out/$name.meta"
}

run_one() { # run_one VARIANT: prints seconds
	local v=$1 t0 t1
	case $v in
	mr-1) mr "$v" 1 ;;
	mr-2) mr "$v" 2 ;;
	mr-3) mr "$v" 3 ;;
	mr-4) mr "$v" 4 ;;
	mr-kill) mr "$v" 3 kill ;;
	seq)
		t0=$(now); "$WORK/mrsequential" "$CORPUS"/*.txt >"$WORK/out/$v"; t1=$(now)
		minus "$t1" "$t0" ;;
	sort)
		t0=$(now); cat "$CORPUS"/*.txt | tr -cs 'A-Za-z' '\n' | grep -v '^$' | LC_ALL=C sort -S 50% | uniq -c | awk '{print $2" "$1}' >"$WORK/out/$v"; t1=$(now)
		minus "$t1" "$t0" ;;
	dask)
		t0=$(now); "$DASK_PY" "$WORK/dask_wc.py" "$CORPUS"/*.txt "$WORK/out/$v" 2>"$WORK/dask.err"; t1=$(now)
		minus "$t1" "$t0" ;;
	esac
}

VARIANTS=()
for v in seq mr-1 mr-2 mr-4 mr-3 mr-kill sort dask; do
	case " $SKIP " in *" $v "*) continue ;; esac
	VARIANTS+=("$v")
done

echo "== anchors"
echo "seq:  bench/mrsequential ($(go version | awk '{print $3}')), one process, bufio.Scanner + bytes.FieldsFunc(!unicode.IsLetter) + map[string]int"
echo "sort: $(sort --version | head -1); tr -cs A-Za-z '\\n' | LC_ALL=C sort | uniq -c"
echo "dask: python3-dask $("$DASK_PY" -c 'import dask; print(dask.__version__)' 2>/dev/null), $("$DASK_PY" --version); bag.read_text(blocksize=64MiB).str.split().flatten().frequencies(), default multiprocessing scheduler"
echo "mr:   scalelab mapreduce, NATS $(nats-server --version | awk '{print $2}'), blob store a local directory, split $SPLIT, R=$REDUCERS, lease $LEASE; $(nproc) cores"

mkdir -p "$WORK/out"
declare -A SECS
declare -A DIGEST
for r in $(seq 1 "$ROUNDS"); do
	line="round $r:"
	for v in "${VARIANTS[@]}"; do
		s=$(run_one "$v")
		SECS[$v]="${SECS[$v]:-} $s"
		d=$(norm "$WORK/out/$v")
		DIGEST[$v]="${DIGEST[$v]:-} $d"
		extra=""
		[ -f "$WORK/out/$v.meta" ] && extra=" ($(cut -d' ' -f2 "$WORK/out/$v.meta") attempts, $(cut -d' ' -f3 "$WORK/out/$v.meta") retried)"
		line="$line  $v $(printf '%.1f' "$s") s$extra"
	done
	echo "$line"
done

echo
echo "== medians over $ROUNDS round(s): MB/s (min–max), and the output's digest"
declare -A MED
all_digests=""
for v in "${VARIANTS[@]}"; do
	read -r med lo hi < <(echo "${SECS[$v]}" | tr ' ' '\n' | grep -v '^$' | sort -g | awk -v b="$BYTES" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f %.1f %.1f\n", m, b/a[NR]/1e6, b/a[1]/1e6}')
	MED[$v]=$med
	printf "%-8s %8.1f MB/s (%s–%s)  %7.2f s  digests:%s\n" "$v" "$(awk -v b="$BYTES" -v m="$med" 'BEGIN {print b / m / 1e6}')" "$lo" "$hi" "$med" "${DIGEST[$v]}"
	all_digests="$all_digests ${DIGEST[$v]}"
done
distinct=$(echo "$all_digests" | tr ' ' '\n' | grep -v '^$' | sort -u | wc -l)
echo
if [ "$distinct" = 1 ]; then echo "outputs: identical in every run ($(echo "$all_digests" | awk '{print $1}'))"; else echo "outputs: DIFFER ($distinct distinct digests)"; fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
[ -n "${MED[mr-2]:-}" ] && [ -n "${MED[seq]:-}" ] && echo "mr-2 / seq throughput: $(ratio "${MED[seq]}" "${MED[mr-2]}")× (goal ≥ 0.8)"
[ -n "${MED[mr-2]:-}" ] && [ -n "${MED[dask]:-}" ] && echo "mr-2 / dask throughput: $(ratio "${MED[dask]}" "${MED[mr-2]}")× (goal ≥ 3)"
[ -n "${MED[mr-1]:-}" ] && [ -n "${MED[mr-4]:-}" ] && echo "mr-4 / mr-1 throughput: $(ratio "${MED[mr-1]}" "${MED[mr-4]}")× ($(nproc) cores)"
[ -n "${MED[sort]:-}" ] && [ -n "${MED[mr-2]:-}" ] && echo "mr-2 / sort|uniq -c throughput: $(ratio "${MED[sort]}" "${MED[mr-2]}")×"
[ -n "${MED[mr-kill]:-}" ] && [ -n "${MED[mr-3]:-}" ] && echo "mr-kill / mr-3 time: $(ratio "${MED[mr-kill]}" "${MED[mr-3]}")× (goal ≤ 1.25)"
[ "$distinct" = 1 ]
