#!/usr/bin/env bash
# The shop's purchase path — 1–3 products bought in one request with an
# Idempotency-Key (POST /api/v1/orders: place, inventory reservation and
# payment at the downstream simulator, mark paid: two SQL write
# transactions); MODE=cart buys the long way (create a cart, add each line,
# check out: five) — in a closed loop (bench/shopdriver), on two
# databases: the embedded SQLite file and PostgreSQL. The anchor is
# pgbench's TPC-B transaction (pgbench's own client, CLIENTS connections,
# 2 threads, scale 10) on the same PostgreSQL server, its rounds
# interleaved with the PostgreSQL rounds: "purchases/s ÷ TPC-B tps" says
# what a purchase costs next to the textbook write transaction.
#
#   bench/shop.sh                                   # 3 rounds of 10 s per setup
#   ROUNDS=5 DURATION=20s CLIENTS=64 LATENCY=20ms bench/shop.sh
#   PROFILE=1 bench/shop.sh                         # + top of a CPU profile per setup
#
# LATENCY is the simulator's latency per downstream call (default 0: the
# shop's own cost). PG is the PostgreSQL server (trust auth); a fresh
# database is created and dropped for each setup. Every round ends with a
# check of the books: one charge per 201, stock down by the units sold.
# fsync is cheap on this VM (~0.2 ms): durable-write figures look better
# here than on real disks.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-32}
LATENCY=${LATENCY:-0ms}
PRODUCTS=${PRODUCTS:-200}
MODE=${MODE:-buy}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PORT=${PORT:-18293}
DOWN_PORT=${DOWN_PORT:-18294}
PPROF_PORT=${PPROF_PORT:-18295}

. "$ROOT/bench/lib/need.sh"
need python3
need curl
need pgbench postgresql-contrib
need psql postgresql-client
command -v go >/dev/null || { echo "bench: go is missing (see README)"; exit 1; }
psql "$PG/postgres" -qAtc 'SELECT 1' >/dev/null || { echo "bench: PostgreSQL is not reachable at $PG"; exit 1; }

WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
	for db in "${DBS[@]}"; do psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab && go build -o "$WORK/shopdriver" ./bench/shopdriver)

wait_ready() { for _ in $(seq 1 100); do curl -fs "$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "bench: $1 not ready"; exit 1; }
stats() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.1f %.1f %.1f\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
fresh_db() { # → a new database name
	local db="shopbench_$$_$1"
	psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
	psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null
	DBS+=("$db")
	echo "$db"
}

declare -A MEDIAN
# The bench is the operator: one admin token for the shop (catalog writes)
# and the simulator (its /stats, for the books).
export SCALELAB_ADMIN_TOKEN=$("$WORK/scalelab" cluster-key)
setup() { # name db-url
	local name=$1 db=$2
	echo "== $name: downstream simulator (latency $LATENCY) on :$DOWN_PORT, shop on :$PORT"
	"$WORK/scalelab" shop downstream --addr "127.0.0.1:$DOWN_PORT" --latency "$LATENCY" >"$WORK/down-$name.log" 2>&1 &
	local down_pid=$!
	PIDS+=("$down_pid")
	wait_ready "http://127.0.0.1:$DOWN_PORT"
	local dbflag=()
	[ -n "$db" ] && dbflag=(--db "$db")
	"$WORK/scalelab" shop serve --addr "127.0.0.1:$PORT" --data "$WORK/data-$name" --downstream "http://127.0.0.1:$DOWN_PORT" \
		--pprof-addr "127.0.0.1:$PPROF_PORT" --worker-id 1 "${dbflag[@]}" >"$WORK/shop-$name.log" 2>&1 &
	local shop_pid=$!
	PIDS+=("$shop_pid")
	wait_ready "http://127.0.0.1:$PORT"
	local drive=("$WORK/shopdriver" -shop "http://127.0.0.1:$PORT" -downstream "http://127.0.0.1:$DOWN_PORT" -products "$WORK/products-$name.txt" -mode "$MODE")
	"${drive[@]}" -seed-products "$PRODUCTS"
	"${drive[@]}" -c "$CLIENTS" -d 3s -run "$name-warm" >"$WORK/warm.out"
	local sold units
	read -r _ _ _ _ _ _ sold units <"$WORK/warm.out"
	local rates=()
	echo "   round  checkouts/s  checkout p50/p99 ms  purchase p50/p99 ms  non-201"
	for r in $(seq 1 "$ROUNDS"); do
		local prof=""
		if [ "$r" = 2 ] && [ "${PROFILE:-0}" = 1 ]; then
			(sleep 2; curl -fsS -o "$WORK/$name.pprof" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=5") &
			prof=$!
		fi
		local rps c50 c99 p50 p99 bad n u
		read -r rps c50 c99 p50 p99 bad n u < <("${drive[@]}" -c "$CLIENTS" -d "$DURATION" -run "$name-$r")
		sold=$((sold + n))
		units=$((units + u))
		rates+=("$rps")
		printf "   %5d  %11.0f  %8.2f / %-8.2f  %8.2f / %-8.2f  %d\n" "$r" "$rps" "$c50" "$c99" "$p50" "$p99" "$bad"
		[ -n "$prof" ] && { wait "$prof" || true; }
		if [ "$name" = postgres ]; then # the anchor's round, interleaved
			local tps
			tps=$(pgbench -n -c "$CLIENTS" -j 2 -T "${DURATION%s}" "$PG/$ANCHOR_DB" 2>/dev/null | awk '/^tps/ {print $3}')
			TPS+=("$tps")
			printf "   %5d  pgbench TPC-B %.0f tps\n" "$r" "$tps"
		fi
	done
	read -r med min max < <(stats "${rates[@]}")
	MEDIAN[$name]=$med
	printf "   %s: median %.0f checkouts/s (min %.0f, max %.0f), %d clients\n" "$name" "$med" "$min" "$max" "$CLIENTS"
	"${drive[@]}" -verify -sold "$sold" -units "$units" | sed 's/^/   /'
	if [ "${PROFILE:-0}" = 1 ] && [ -s "$WORK/$name.pprof" ]; then
		echo "   CPU profile of the shop (top 14, cumulative):"
		go tool pprof -top -cum -nodecount 14 "$WORK/scalelab" "$WORK/$name.pprof" 2>/dev/null | tail -14 | sed 's/^/   /'
	fi
	kill "$shop_pid" "$down_pid"
	wait "$shop_pid" "$down_pid" 2>/dev/null || true
}

echo "== anchor: $(pgbench --version), TPC-B (its built-in script) on the same PostgreSQL ($(psql "$PG/postgres" -qAtc 'SHOW server_version')), scale 10, $CLIENTS clients, 2 threads, rounds interleaved with the shop's PostgreSQL rounds"
ANCHOR_DB=$(fresh_db pgbench)
pgbench -q -i -s 10 "$PG/$ANCHOR_DB" >/dev/null 2>&1
TPS=()
echo "== mode $MODE: $([ "$MODE" = buy ] && echo "one request per purchase, 2 write transactions" || echo "cart, lines, checkout: 5 write transactions on average")"
setup sqlite ""
PGDB=$(fresh_db shop)
setup postgres "$PG/$PGDB?sslmode=disable"
read -r tmed tmin tmax < <(stats "${TPS[@]}")
printf "   pgbench: median %.0f tps (min %.0f, max %.0f)\n" "$tmed" "$tmin" "$tmax"

echo "== summary"
printf "purchases/s  SQLite %.0f  PostgreSQL %.0f   pgbench TPC-B %.0f tps\n" "${MEDIAN[sqlite]}" "${MEDIAN[postgres]}" "$tmed"
python3 -c 'import sys; print("PostgreSQL purchases/s ÷ pgbench TPC-B tps = %.2f (target ≥ 0.5)" % (float(sys.argv[1]) / float(sys.argv[2])))' "${MEDIAN[postgres]}" "$tmed"
