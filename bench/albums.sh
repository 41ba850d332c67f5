#!/usr/bin/env bash
# The album store on embedded defaults (SQLite, in-process cache, embedded
# NATS JetStream, local blob directory): cached GET of an album and POST of
# a review (published to the broker, 202), driven by wrk on loopback. The
# GET's anchor is bench/jsonfloor — a bare net/http handler answering the
# same album JSON bytes from a map — run round by round in the same run,
# so "store / floor" says what the album store costs above the Go HTTP
# stack on this machine.
#
#   bench/albums.sh                         # 3 rounds of 10 s per request kind
#   ROUNDS=5 DURATION=20s CONNS=128 PROFILE=1 bench/albums.sh
#
# Prints each round, median and spread of requests/s with wrk's p99, the
# floor's figures and the ratio, the open-model p99 (scalelab load) at
# half of the median peak, and checks
# that every accepted review was counted. PROFILE=1 also prints the top of
# a 5 s CPU profile of the server under each load. Installs wrk if missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
ALBUMS=${ALBUMS:-100}
PORT=${PORT:-18192}
PPROF_PORT=${PPROF_PORT:-18193}
FLOOR_PORT=${FLOOR_PORT:-18194}

. "$ROOT/bench/lib/need.sh"
need wrk
need curl
need python3
command -v go >/dev/null || { echo "bench: go is missing (see README)"; exit 1; }
WORK=$(mktemp -d)
PID=""
FLOOR_PID=""
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	[ -n "$FLOOR_PID" ] && kill "$FLOOR_PID" 2>/dev/null && wait "$FLOOR_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab && go build -o "$WORK/jsonfloor" ./bench/jsonfloor)
BASE="http://127.0.0.1:$PORT"
echo "== start scalelab albums on $BASE (embedded defaults)"
"$WORK/scalelab" albums serve --addr "127.0.0.1:$PORT" --data "$WORK/data" --pprof-addr "127.0.0.1:$PPROF_PORT" \
	--worker-id 1 >"$WORK/albums.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== create $ALBUMS albums (a 1×1 PNG cover each)"
python3 -c 'import base64,sys; sys.stdout.buffer.write(base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="))' >"$WORK/cover.png"
: >"$WORK/ids.txt"
for i in $(seq 1 "$ALBUMS"); do
	curl -fsS -F "profile={\"artist\":\"Bench Artist $((i % 10))\",\"title\":\"Album $i\",\"year\":$((1950 + i % 70))};type=application/json" \
		-F image=@"$WORK/cover.png" "$BASE/api/v1/albums" | python3 -c 'import json,sys; print(json.load(sys.stdin)["albumId"])' >>"$WORK/ids.txt"
done

echo "== start the net/http floor on 127.0.0.1:$FLOOR_PORT, serving the same album JSON"
while read -r id; do
	printf '/api/v1/albums/%s\t%s\n' "$id" "$(curl -fsS "$BASE/api/v1/albums/$id")"
done <"$WORK/ids.txt" >"$WORK/bodies.tsv"
"$WORK/jsonfloor" -addr "127.0.0.1:$FLOOR_PORT" -bodies "$WORK/bodies.tsv" &
FLOOR_PID=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$FLOOR_PORT/api/v1/albums/$(head -1 "$WORK/ids.txt")" >/dev/null 2>&1 && break; sleep 0.1; done
cmp <(curl -fsS "$BASE/api/v1/albums/$(head -1 "$WORK/ids.txt")") \
	<(curl -fsS "http://127.0.0.1:$FLOOR_PORT/api/v1/albums/$(head -1 "$WORK/ids.txt")") ||
	{ echo "bench: the floor does not answer the store's bytes"; exit 1; }

cat >"$WORK/get.lua" <<LUA
local ids = {}
for line in io.lines("$WORK/ids.txt") do ids[#ids + 1] = line end
math.randomseed(42)
request = function() return wrk.format("GET", "/api/v1/albums/" .. ids[math.random(#ids)]) end
LUA
cat >"$WORK/review.lua" <<LUA
local ids = {}
for line in io.lines("$WORK/ids.txt") do ids[#ids + 1] = line end
math.randomseed(43)
request = function() return wrk.format("POST", "/api/v1/albums/" .. ids[math.random(#ids)] .. "/reviews/like") end
done = function(summary, latency, requests)
	io.write(string.format("NON2XX %d\n", summary.errors.status))
end
LUA

run_wrk() { # script [base] → "rps p99_ms non2xx requests"
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$WORK/$1.lua" "${2:-$BASE}" >"$WORK/wrk.out" 2>&1
	awk '/^Requests\/sec:/ {rps=$2}
	     $1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99=v}
	     /requests in/ {n=$1}
	     /^NON2XX/ {bad=$2}
	     END {print rps, p99, bad+0, n}' "$WORK/wrk.out"
}
stats() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.0f %.0f %.0f\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
profile() { # label
	[ "${PROFILE:-0}" = 1 ] || return 0
	curl -fsS -o "$WORK/$1.pprof" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=5"
	echo "   CPU profile under $1 (top 12, cumulative):"
	go tool pprof -top -cum -nodecount 12 "$WORK/scalelab" "$WORK/$1.pprof" 2>/dev/null | tail -12 | sed 's/^/   /'
}

declare -A MEDIAN
ACCEPTED=0
for kind in get review; do
	echo "== $kind: wrk -t$THREADS -c$CONNS -d$DURATION, random albums among $ALBUMS, $ROUNDS rounds"
	read -r _ _ bad n < <(run_wrk "$kind") # warm-up (fills the cache for get)
	[ "$kind" = review ] && ACCEPTED=$((ACCEPTED + n - bad))
	[ "$kind" = get ] && run_wrk get "http://127.0.0.1:$FLOOR_PORT" >/dev/null
	RPS=()
	FLOOR=()
	for r in $(seq 1 "$ROUNDS"); do
		PROF_PID=""
		if [ "$r" = 2 ] && [ "${PROFILE:-0}" = 1 ]; then
			(sleep 2; profile "$kind") &
			PROF_PID=$!
		fi
		read -r rps p99 bad n < <(run_wrk "$kind")
		[ "$kind" = review ] && ACCEPTED=$((ACCEPTED + n - bad))
		RPS+=("$rps")
		printf "round %d  %-6s %7.0f req/s  p99 %6.2f ms  non-2xx %d\n" "$r" "$kind" "$rps" "$p99" "$bad"
		[ -n "$PROF_PID" ] && { wait "$PROF_PID" || true; }
		if [ "$kind" = get ]; then
			read -r frps fp99 fbad _ < <(run_wrk get "http://127.0.0.1:$FLOOR_PORT")
			FLOOR+=("$frps")
			printf "round %d  %-6s %7.0f req/s  p99 %6.2f ms  non-2xx %d\n" "$r" floor "$frps" "$fp99" "$fbad"
		fi
	done
	read -r med min max < <(stats "${RPS[@]}")
	MEDIAN[$kind]=$med
	printf "%-6s median %7d req/s  (min %d, max %d)\n" "$kind" "$med" "$min" "$max"
	if [ "$kind" = get ]; then
		read -r fmed fmin fmax < <(stats "${FLOOR[@]}")
		printf "%-6s median %7d req/s  (min %d, max %d)\n" floor "$fmed" "$fmin" "$fmax"
		python3 -c 'import sys; print("cached GET / net/http floor = %.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$med" "$fmed"
	fi
done

for kind in get review; do
	half=$((MEDIAN[$kind] / 2))
	# The open-model run targets one album (its ID is a Snowflake, not a
	# number scalelab load's {{rand}} could produce).
	one=$(head -1 "$WORK/ids.txt")
	url="$BASE/api/v1/albums/$one"
	[ "$kind" = review ] && url="$url/reviews/like"
	method=GET
	[ "$kind" = review ] && method=POST
	"$WORK/scalelab" load http --method "$method" --rate "$half/s" --duration "$DURATION" --connections "$CONNS" --quiet \
		--out "$WORK/open-$kind" "$url" >/dev/null
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["latency_ms"]
print("open model %-6s at %s/s: achieved %6.0f req/s  errors %d  p50 %.3f  p99 %.3f  p99.9 %.3f ms" % (
    sys.argv[2], sys.argv[3], d["rps"], d["errors"], l["p50"], l["p99"], l["p999"]))
if d["errors"]:
    print("   errors by kind %s, statuses %s" % (d.get("errors_by_kind"), d.get("status")))' "$WORK/open-$kind/summary.json" "$kind" "$half"
	if [ "$kind" = review ]; then
		ACCEPTED=$((ACCEPTED + $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"] - d["errors"])' "$WORK/open-$kind/summary.json")))
	fi
done

echo "== every accepted review counted?"
# The consumer may still be draining the broker's backlog: wait while the
# count moves (up to 10 minutes), and call it missing only once it stops.
counted=0
still=0
for _ in $(seq 1 600); do
	last=$counted
	counted=$(while read -r id; do curl -fsS "$BASE/api/v1/albums/$id/reviews"; echo; done <"$WORK/ids.txt" |
		python3 -c 'import json,sys; print(sum(json.loads(l)["likes"] for l in sys.stdin if l.strip()))')
	[ "$counted" -ge "$ACCEPTED" ] && break
	if [ "$counted" = "$last" ]; then still=$((still + 1)); else still=0; fi
	[ "$still" -ge 10 ] && break
	sleep 1
done
echo "reviews accepted (2xx) $ACCEPTED, counted $counted"
if [ "$counted" -lt "$ACCEPTED" ]; then
	echo "MISSING: $((ACCEPTED - counted)) accepted reviews not counted after the count stopped moving"
fi
