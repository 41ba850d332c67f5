#!/usr/bin/env bash
# scalelab load next to wrk, k6 and Locust (FastHttpUser), one after another
# in the same run, against one nginx answering a static 200. nginx runs one
# worker pinned to CPU 0 and every load tool is pinned to CPU 1, so each tool
# gets the same core and the target is the same for all.
#
#   bench/loadgen.sh                         # 3 rounds of 10 s per tool, 50 connections
#   ROUNDS=5 DURATION=20s CONNS=100 bench/loadgen.sh
#   K6=/path/to/k6 bench/loadgen.sh          # use this k6 instead of building one
#
# Part 1 prints requests/s per tool (closed model, same connection count),
# the medians and the ratios (targets: ≥ 0.8× wrk, ≥ 1.5× k6, ≥ 5× Locust).
# Part 2 runs scalelab's open model at half of wrk's median rate beside
# bench/wrk2ref (a small C wrk2-style client: Debian ships wrk, not wrk2),
# alternating, and prints the p99 of each and their ratio (target: within
# 20 %). Needs root for apt-get when tools are missing; loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
PORT=${PORT:-18400}
K6_VERSION=${K6_VERSION:-v1.8.1}
SECS=${DURATION%s}

. "$ROOT/bench/lib/need.sh"
need wrk
need nginx nginx-light
need locust python3-locust
need gcc
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is missing"; exit 1; }

WORK=$(mktemp -d)
cleanup() {
	[ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build scalelab and the wrk2-style reference"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab)
gcc -O2 -Wall -o "$WORK/wrk2ref" "$ROOT/bench/wrk2ref/wrk2ref.c"

K6=${K6:-}
if [ -z "$K6" ]; then
	if command -v k6 >/dev/null; then K6=$(command -v k6)
	elif [ -x "$HOME/go/bin/k6" ]; then K6=$HOME/go/bin/k6
	else
		echo "== building k6 $K6_VERSION with go install (several minutes, once)"
		if (cd "$WORK" && GOFLAGS=-buildvcs=false go install "go.k6.io/k6@$K6_VERSION" >"$WORK/k6build.log" 2>&1); then
			K6=$(go env GOPATH)/bin/k6
		else
			echo "bench: could not build k6 (see below); k6 is skipped"; tail -5 "$WORK/k6build.log"
		fi
	fi
fi

mkdir -p "$WORK/tmp"
cat >"$WORK/nginx.conf" <<NGX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    server { listen 127.0.0.1:$PORT; location / { return 200 "ok\n"; } }
}
NGX
taskset -c 0 nginx -p "$WORK" -c "$WORK/nginx.conf"
sleep 0.5
URL="http://127.0.0.1:$PORT/"
curl -fs "$URL" >/dev/null

cat >"$WORK/k6.js" <<K6JS
import http from 'k6/http';
export const options = { vus: $CONNS, duration: '$DURATION', discardResponseBodies: true };
export default function () { http.get('$URL'); }
K6JS
cat >"$WORK/locustfile.py" <<PY
from locust import task
from locust.contrib.fasthttp import FastHttpUser
class Bench(FastHttpUser):
    @task
    def root(self):
        self.client.get("/")
PY

run_wrk()      { taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" "$URL" | awk '/^Requests\/sec:/ {print $2}'; }
run_scalelab() { taskset -c 1 "$WORK/scalelab" load http --vus "$CONNS" --duration "$DURATION" --quiet --out "$WORK/sl" "$URL" >/dev/null
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rps"])' "$WORK/sl/summary.json"; }
run_k6()       { [ -n "$K6" ] || { echo 0; return; }
	taskset -c 1 "$K6" run --quiet --no-color --summary-export "$WORK/k6.json" "$WORK/k6.js" >/dev/null 2>&1
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"]["http_reqs"]["rate"])' "$WORK/k6.json"; }
run_locust()   { (cd "$WORK" && taskset -c 1 locust -f locustfile.py --headless -u "$CONNS" -r "$CONNS" -t "$DURATION" \
		--host "http://127.0.0.1:$PORT" --only-summary --csv "$WORK/locust" >/dev/null 2>&1) || true
	python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["Name"] == "Aggregated": print(r["Requests/s"])' "$WORK/locust_stats.csv"; }

median() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.0f %.0f %.0f\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
ratio()  { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== versions: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'); k6 $([ -n "$K6" ] && "$K6" version 2>/dev/null | head -1 | awk '{print $2}' || echo skipped); locust $(dpkg-query -W -f='${Version}' python3-locust 2>/dev/null || echo unknown) (FastHttpUser); $(nginx -v 2>&1 | sed 's/.*: //'); each tool driven as its docs say: wrk -t1, k6 run with VUs, locust --headless with one process"
echo "== closed model, $CONNS connections, $DURATION per tool, $ROUNDS rounds (nginx on CPU 0, tools on CPU 1)"
W=() S=() K=() L=()
for r in $(seq 1 "$ROUNDS"); do
	w=$(run_wrk); s=$(run_scalelab); k=$(run_k6); l=$(run_locust)
	W+=("$w") S+=("$s") K+=("$k") L+=("${l:-0}")
	printf "round %d  wrk %8.0f  scalelab %8.0f  k6 %8.0f  locust %8.0f  req/s\n" "$r" "$w" "$s" "$k" "${l:-0}"
done
read -r wm wmin wmax < <(median "${W[@]}")
read -r sm smin smax < <(median "${S[@]}")
read -r km kmin kmax < <(median "${K[@]}")
read -r lm lmin lmax < <(median "${L[@]}")
echo
printf "%-10s median %8d req/s  (min %d, max %d)\n" wrk "$wm" "$wmin" "$wmax" scalelab "$sm" "$smin" "$smax" \
	k6 "$km" "$kmin" "$kmax" locust "$lm" "$lmin" "$lmax"
printf "scalelab / wrk = %s (target >= 0.8)   scalelab / k6 = %s (target >= 1.5)   scalelab / locust = %s (target >= 5)\n" \
	"$(ratio "$sm" "$wm")" "$(ratio "$sm" "$km")" "$(ratio "$sm" "$lm")"

RATE=${OPEN_RATE:-$((wm / 2))}
echo
OPEN_ROUNDS=${OPEN_ROUNDS:-5}
echo "== open model at $RATE req/s (half of wrk's median unless OPEN_RATE is set), $DURATION, $OPEN_ROUNDS rounds:"
echo "   scalelab load next to bench/wrk2ref (a C wrk2-style client: latency from each request's due time)"
SP=() RP=()
within=0
for r in $(seq 1 "$OPEN_ROUNDS"); do
	taskset -c 1 "$WORK/wrk2ref" "$RATE" "$SECS" "$CONNS" 127.0.0.1 "$PORT" / >"$WORK/ref.out"
	taskset -c 1 "$WORK/scalelab" load http --rate "$RATE/s" --duration "$DURATION" --connections "$CONNS" --quiet --out "$WORK/slo" "$URL" >/dev/null
	read -r s_p50 s_p90 s_p99 s_rps < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["latency_ms"]
print(l["p50"], l["p90"], l["p99"], d["rps"])' "$WORK/slo/summary.json")
	r_p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' "$WORK/ref.out"); r_p90=$(sed -n 's/.*p90_ms=\([0-9.]*\).*/\1/p' "$WORK/ref.out")
	r_p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' "$WORK/ref.out"); r_rps=$(sed -n 's/.*achieved_rps=\([0-9.]*\).*/\1/p' "$WORK/ref.out")
	SP+=("$s_p99") RP+=("$r_p99")
	awk -v a="$s_p99" -v b="$r_p99" 'BEGIN {exit !(b > 0 && a / b >= 0.8 && a / b <= 1.2)}' && within=$((within + 1))
	printf "round %d  scalelab %6.0f req/s p50 %.3f p90 %.3f p99 %.3f ms   wrk2ref %6.0f req/s p50 %.3f p90 %.3f p99 %.3f ms\n" \
		"$r" "$s_rps" "$s_p50" "$s_p90" "$s_p99" "$r_rps" "$r_p50" "$r_p90" "$r_p99"
done
mid() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
sp=$(mid "${SP[@]}"); rp=$(mid "${RP[@]}")
printf "median p99: scalelab %.3f ms, wrk2ref %.3f ms, ratio %s (target 0.8–1.2)\n" "$sp" "$rp" "$(awk -v a="$sp" -v b="$rp" 'BEGIN {printf "%.2f", a / b}')"
printf "rounds with scalelab's p99 within 20 %% of the reference's: %d of %d (target: 4 of 5)\n" "$within" "$OPEN_ROUNDS"
