#!/usr/bin/env bash
# The flash sale's two architectures and the ceiling of its admission
# step, in one run:
#   sync   scalelab flashsale serve --mode sync on PostgreSQL (the order,
#          its hot-row decrement and its payment inside the request)
#   async  --mode async on PostgreSQL + Redis + NATS (the Lua gate, the
#          order and its outbox row, 202; workers pay afterwards)
#   lua    redis-benchmark running the gate's own reservation script
#          (`scalelab flashsale gate-script`) with EVALSHA: what Redis
#          alone admits, the ceiling of the async admission
# and then, in a second phase (the async API stopped):
#   admit  the async API with --processor none: admission alone, as when
#          the workers run on machines of their own; after its rounds a
#          `scalelab flashsale worker` process drains the backlog, timed
#          (settled/s); lua rounds alternate with it again
# wrk drives both APIs with a unique buyer per request (POST, JSON), the
# same connections; rounds alternate. Each sale has more units than any
# round can sell, so every request is an admission, and the payment
# service (scalelab shop downstream) answers in PAY_LATENCY.
#
#   bench/flashsale.sh                      # 3 rounds of 10 s
#   ROUNDS=5 DURATION=20s CONNS=64 bench/flashsale.sh
#
# Prints each round, the medians with their spread, p99s, the ratios
# (goals: async ≥ 10× sync, ≥ 0.5× the Lua ceiling, async p99 < 20 ms), and
# each sale's reconciliation after the run (oversold, unsold, lost: 0).
# Needs PostgreSQL and Redis on their default local ports (PG_URL,
# REDIS_URL override); runs a NATS server of its own (its streams die with
# the run); installs wrk, redis-tools and nats-server when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PAY_LATENCY=${PAY_LATENCY:-5ms}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PAY=${PAY:-18401} SYNC=${SYNC:-18402} ASYNC=${ASYNC:-18403} NATS_PORT=${NATS_PORT:-18404}
NATS_URL=nats://127.0.0.1:$NATS_PORT
TOKEN=bench-flashsale-token-0123456789abcdef
NS=bench$$

. "$ROOT/bench/lib/need.sh"
need wrk
need redis-benchmark redis-tools
need redis-cli redis-tools
need nats-server nats-server
need psql postgresql-client
command -v go >/dev/null || { echo "bench: go is missing (see README)"; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	redis-cli -u "$REDIS_URL" --scan --pattern "{$NS:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
	[ -n "${BENCH_DB:-}" ] && psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== versions"
echo "redis:     $(redis-cli -u "$REDIS_URL" info server | awk -F: '/^redis_version/ {print $2}' | tr -d '\r')"
echo "wrk:       $(wrk -v 2>&1 | head -1)"
echo "the gate's script is driven by redis-benchmark with EVALSHA, $CONNS connections, no pipelining"

echo "== build"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab)

declare -A PID
start() { # name port args…
	local name=$1 port=$2
	shift 2
	"$WORK/scalelab" "$@" --addr "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
	PIDS+=($!)
	PID[$name]=$!
	for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "bench: $name did not start"; tail -20 "$WORK/$name.log"; exit 1
}
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
echo "nats:      $(nats-server --version 2>&1)"
start payment "$PAY" shop downstream --latency "$PAY_LATENCY" --admin-token "$TOKEN"
# A database of the run's own: what an earlier run left (orders in flight,
# unpublished events) would be this run's relay's and sweeper's work.
BENCH_DB=flashsale_bench_$$
psql -q "$PG_URL" -c "CREATE DATABASE $BENCH_DB" >/dev/null
DB_URL=$(python3 -c "import urllib.parse,sys; u=urllib.parse.urlparse(sys.argv[1]); print(u._replace(path='/'+sys.argv[2]).geturl())" "$PG_URL" "$BENCH_DB")
common=(--admin-token "$TOKEN" --payment "http://127.0.0.1:$PAY" --db "$DB_URL" --namespace "$NS")
start sync "$SYNC" flashsale serve --mode sync --data "$WORK/sync" "${common[@]}"
start async "$ASYNC" flashsale serve --mode async --data "$WORK/async" --cache "$REDIS_URL" --broker "$NATS_URL" "${common[@]}"

sale() { # port → sale ID
	curl -fs -H "Authorization: Bearer $TOKEN" -d '{"item":"bench","stock":10000000,"per_user_limit":1}' "http://127.0.0.1:$1/api/v1/sales" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
SYNC_SALE=$(sale "$SYNC") ASYNC_SALE=$(sale "$ASYNC")

cat >"$WORK/buyers.lua" <<'LUA'
-- One new buyer per request: the run's nonce (the script's argument), the
-- thread and a counter.
local n = 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) prefix = args[1] .. "-" .. tostring(tid) end
function request()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, '{"userId":"u' .. prefix .. "-" .. n .. '"}')
end
LUA

RUN=0
run_wrk() { # port sale → "rps p99_ms non2xx"
	RUN=$((RUN + 1))
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$WORK/buyers.lua" "http://127.0.0.1:$1/api/v1/sales/$2/orders" -- "r$RUN-$$-$RANDOM" >"$WORK/wrk.out" 2>&1
	local rps p99 bad
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out")
	p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.out")
	bad=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out")
	echo "$rps $p99 ${bad:-0}"
}

# The Lua ceiling: the gate's keys for a bench sale, opened with the same
# layout the service's Open writes; random users (limit high enough that
# none is refused) and random order IDs.
LUA_SALE=1
TAG="{$NS:fs:$LUA_SALE}"
redis-cli -u "$REDIS_URL" set "$TAG:left" 1000000000 >/dev/null
redis-cli -u "$REDIS_URL" set "$TAG:limit" 1000000000 >/dev/null
SHA=$(redis-cli -u "$REDIS_URL" script load "$("$WORK/scalelab" flashsale gate-script)")
REDIS_HOST=$(python3 -c "import urllib.parse,sys; u=urllib.parse.urlparse(sys.argv[1]); print(u.hostname, u.port or 6379)" "$REDIS_URL")
read -r RH RP <<<"$REDIS_HOST"
run_lua() { # → "rps p99_ms"
	local secs=${DURATION%s}
	# redis-benchmark runs a count, not a time: size it from a short probe.
	redis-benchmark -h "$RH" -p "$RP" -c "$CONNS" -n 20000 -r 100000000 -q --csv \
		EVALSHA "$SHA" 5 "$TAG:left" "$TAG:limit" "$TAG:users" "$TAG:held" "$TAG:since" "u__rand_int__" "__rand_int__" 1 >"$WORK/probe.csv" 2>&1
	local probe n
	probe=$(awk -F'"' 'NR==2 {print $4}' "$WORK/probe.csv")
	n=$(awk -v r="$probe" -v s="$secs" 'BEGIN {printf "%d", r * s}')
	redis-benchmark -h "$RH" -p "$RP" -c "$CONNS" -n "$n" -r 100000000 --csv \
		EVALSHA "$SHA" 5 "$TAG:left" "$TAG:limit" "$TAG:users" "$TAG:held" "$TAG:since" "u__rand_int__" "__rand_int__" 1 >"$WORK/lua.csv" 2>&1
	awk -F'"' 'NR==2 {print $4, $14}' "$WORK/lua.csv"
}

echo "== wrk -t$THREADS -c$CONNS -d$DURATION (one new buyer per request), redis-benchmark -c$CONNS; $ROUNDS rounds, alternating"
run_wrk "$SYNC" "$SYNC_SALE" >/dev/null
run_wrk "$ASYNC" "$ASYNC_SALE" >/dev/null
declare -A RPS P99
for r in $(seq 1 "$ROUNDS"); do
	read -r s_rps s_p99 s_bad < <(run_wrk "$SYNC" "$SYNC_SALE")
	read -r a_rps a_p99 a_bad < <(run_wrk "$ASYNC" "$ASYNC_SALE")
	read -r l_rps l_p99 < <(run_lua)
	RPS[sync]+="$s_rps " P99[sync]+="$s_p99 " RPS[async]+="$a_rps " P99[async]+="$a_p99 " RPS[lua]+="$l_rps " P99[lua]+="$l_p99 "
	printf "round %d  sync %7.0f/s (p99 %7.2f ms, non-2xx %s)  async %7.0f/s (p99 %6.2f ms, non-2xx %s)  lua %8.0f/s (p99 %5.2f ms)\n" \
		"$r" "$s_rps" "$s_p99" "$s_bad" "$a_rps" "$a_p99" "$a_bad" "$l_rps" "$l_p99"
done

median() { printf "%s\n" $@ | sort -g | awk '{v[NR]=$1} END {printf "%.2f %.2f %.2f\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
echo
declare -A MED MP99
for n in sync async lua; do
	read -r med lo hi < <(median ${RPS[$n]})
	read -r p99 _ _ < <(median ${P99[$n]})
	MED[$n]=$med MP99[$n]=$p99
	printf "%-6s median %9.0f admitted/s  (min %.0f, max %.0f)  median p99 %7.2f ms\n" "$n" "$med" "$lo" "$hi" "$p99"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "ratio async / sync        = $(ratio "${MED[async]}" "${MED[sync]}")   (goal >= 10)"
echo "ratio async / lua ceiling = $(ratio "${MED[async]}" "${MED[lua]}")   (goal >= 0.5)"
echo "async p99                 = ${MP99[async]} ms   (goal < 20 ms)"


in_flight() { curl -fs "http://127.0.0.1:$1/api/v1/sales/$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orders_in_flight"])'; }
books() { curl -fs -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/api/v1/sales/$2/reconcile"; }

echo
echo "== after the run: each sale settles, then its books"
for pair in "sync $SYNC $SYNC_SALE" "async $ASYNC $ASYNC_SALE"; do
	read -r name port id <<<"$pair"
	for _ in $(seq 1 600); do
		[ "$(in_flight "$port" "$id")" = 0 ] && break
		sleep 0.5
	done
	echo "$name: $(books "$port" "$id")"
done

echo
echo "== phase 2: admission alone (--processor none), then a worker process drains the backlog"
kill "${PID[async]}"
wait "${PID[async]}" 2>/dev/null || true
ADMIT=$ASYNC
start admit "$ADMIT" flashsale serve --mode async --processor none --data "$WORK/admit" --cache "$REDIS_URL" --broker "$NATS_URL" "${common[@]}"
ADMIT_SALE=$(sale "$ADMIT")
run_wrk "$ADMIT" "$ADMIT_SALE" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
	read -r a_rps a_p99 a_bad < <(run_wrk "$ADMIT" "$ADMIT_SALE")
	read -r l_rps l_p99 < <(run_lua)
	RPS[admit]+="$a_rps " P99[admit]+="$a_p99 " RPS[lua2]+="$l_rps "
	printf "round %d  admit %7.0f/s (p99 %6.2f ms, non-2xx %s)  lua %8.0f/s (p99 %5.2f ms)\n" "$r" "$a_rps" "$a_p99" "$a_bad" "$l_rps" "$l_p99"
done
read -r med lo hi < <(median ${RPS[admit]})
read -r p99 _ _ < <(median ${P99[admit]})
read -r lmed _ _ < <(median ${RPS[lua2]})
printf "%-6s median %9.0f admitted/s  (min %.0f, max %.0f)  median p99 %7.2f ms\n" admit "$med" "$lo" "$hi" "$p99"
echo "ratio admit / lua ceiling = $(ratio "$med" "$lmed")   (goal >= 0.5; the lua median of this phase: $lmed/s)"
echo "admit p99                 = $p99 ms   (goal < 20 ms)"
backlog=$(in_flight "$ADMIT" "$ADMIT_SALE")
t0=$(date +%s.%N)
"$WORK/scalelab" flashsale worker --addr 127.0.0.1:0 --cache "$REDIS_URL" --broker "$NATS_URL" "${common[@]}" >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 2400); do
	[ "$(in_flight "$ADMIT" "$ADMIT_SALE")" = 0 ] && break
	sleep 0.25
done
t1=$(date +%s.%N)
echo "a worker process (--workers 16) settled a backlog of $backlog orders in $(awk -v a="$t0" -v b="$t1" -v n="$backlog" 'BEGIN {printf "%.1f s: %.0f settled/s", b - a, n / (b - a)}')"
echo "admit: $(books "$ADMIT" "$ADMIT_SALE")"
