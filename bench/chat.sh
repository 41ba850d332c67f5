#!/usr/bin/env bash
# The chat end to end, on this machine: two `scalelab chat serve` instances
# and one `scalelab chat persist` on PostgreSQL, first with NATS JetStream,
# then with RabbitMQ, driven on loopback by `scalelab load chat`:
# CONNS WebSocket connections over ROOMS rooms and both servers, MESSAGES
# messages after a warm-up, each connection with at most WINDOW awaiting
# their reply. Every round uses a fresh database and broker namespace and
# ends with a check that every acked message is stored exactly once.
#
# Per broker it prints, for each round and as median [min–max]:
#   acked/s      messages acknowledged to their senders per second
#   delivered/s  messages per second until the last one reached every member of its room
#   persisted/s  messages per second until the last acked one was stored
#   p50/p99 send→receive latency, lost and duplicated rows
# and then paced runs at 80 % of the median delivered rate and at 80 % of
# the issue's target of 40,000 msg/s (TARGET; the latency target is
# p99 < 50 ms there).
#
#   bench/chat.sh
#   ROUNDS=3 MESSAGES=500000 CONNS=40 ROOMS=20 WINDOW=32 BROKERS="nats amqp" bench/chat.sh
#   PACED_RATES="5000 10000" bench/chat.sh   # also paced runs at these rates
#   SERVE_FLAGS="--publish-in-flight 2" bench/chat.sh  # extra flags for both servers
#   PACE_AT_MEDIAN=0 bench/chat.sh  # skip the paced run at 80 % of the median
#   PROFILE=1 ROUNDS=1 BROKERS=nats bench/chat.sh  # + top of a 5 s CPU profile of
#                                                  # server 1 and the persister in each round
#
# With NATS, every round is followed by the broker's own ceiling on the
# same server: `nats bench` (natscli NATSCLI_VERSION, built from its Go
# module) publishing MESSAGES messages of CEILING_SIZE (a chat message as
# the broker carries it is ~250 bytes) to a file-backed stream with async
# publish acks while a durable consumer with explicit acks reads them:
# messages over the wall time of both. The report states chat's acked and
# persisted rates as a share of that ceiling.
#
# Every round also prints where the two cores went in a 5 s window past the
# warm-up: CPU seconds per second (1.00 = one core) of each process group
# — the servers, the persister, the load generator, the broker, PostgreSQL —
# and the machine's idle share.
#
# Needs PostgreSQL (127.0.0.1:5432, trust), NATS with JetStream (4222),
# RabbitMQ (5672, guest/guest), psql and go.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
MESSAGES=${MESSAGES:-500000}
WARMUP=${WARMUP:-32000}
CONNS=${CONNS:-40}
ROOMS=${ROOMS:-20}
WINDOW=${WINDOW:-32}
BROKERS=${BROKERS:-"nats amqp"}
TARGET=${TARGET:-40000}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
BASE=${CHAT_BASE:-1850} # servers on 18501, 18502; persister on 18503

WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
	for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for d in "${DBS[@]:-}"; do [ -n "$d" ] && psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
go build -o "$WORK/scalelab" ./cmd/scalelab
SL="$WORK/scalelab"
. bench/lib/need.sh
NATSCLI_VERSION=${NATSCLI_VERSION:-v0.5.0}
CEILING_SIZE=${CEILING_SIZE:-256B}
case " $BROKERS " in *" nats "*)
	NATSCLI=$(need_go_build nats github.com/nats-io/natscli/nats "$NATSCLI_VERSION") || exit 1
	echo "   ceiling: the same NATS server ($(nats-server --version 2>/dev/null || echo "version unknown")), driven by natscli $NATSCLI_VERSION: bench js pub async + bench js consume (durable, explicit acks), $CEILING_SIZE messages, file storage"
	;;
esac

# ceiling: the broker's own publish+consume rate (messages over the wall
# time from the first publish to the last consumed message).
ceiling() {
	local stream="chatceiling$RANDOM$RANDOM" start end
	start=$(date +%s.%N)
	"$NATSCLI" -s "$NATS_URL" bench js pub async "$stream.msgs" --stream "$stream" --create --storage file \
		--msgs "$MESSAGES" --size "$CEILING_SIZE" --no-progress >"$WORK/ceiling.pub" 2>&1 &
	local pub=$!
	for _ in $(seq 1 100); do
		"$NATSCLI" -s "$NATS_URL" stream info "$stream" >/dev/null 2>&1 && break
		sleep 0.05
	done
	"$NATSCLI" -s "$NATS_URL" bench js consume --stream "$stream" --msgs "$MESSAGES" --no-progress >"$WORK/ceiling.sub" 2>&1 || true
	wait "$pub" || true
	end=$(date +%s.%N)
	"$NATSCLI" -s "$NATS_URL" stream rm "$stream" -f >/dev/null 2>&1 || true
	if ! grep -q 'consumer (callback) stats' "$WORK/ceiling.sub"; then
		echo "   ceiling run failed:" >&2
		tail -5 "$WORK/ceiling.pub" "$WORK/ceiling.sub" >&2
		return 1
	fi
	awk -v n="$MESSAGES" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f\n", n / (e - s)}'
}

# drop_broker_state removes a namespace's stream (NATS) or queues (RabbitMQ).
drop_broker_state() {
	local broker=$1 ns=$2
	if [ "$broker" = nats ]; then
		exec 3<>/dev/tcp/127.0.0.1/4222
		printf 'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.DELETE.%s_chat 0\r\n\r\nPING\r\n' "$ns" >&3
		timeout 1 cat <&3 >/dev/null || true
		exec 3>&-
	elif command -v rabbitmqctl >/dev/null; then
		rabbitmqctl -q delete_queue "$ns.chat.persister" >/dev/null 2>&1 || true
		rabbitmqctl -q delete_queue "$ns.chat.stream" >/dev/null 2>&1 || true
		rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$ns.chat\">>), false, <<\"bench\">>)." >/dev/null 2>&1 || true
	fi
}

# cpu_ticks PID…: utime+stime of the processes, in clock ticks ("pid ticks" lines).
cpu_ticks() {
	for pid in "$@"; do
		[ -r "/proc/$pid/stat" ] || continue
		# fields 14 and 15 after the ")" that ends the command name
		sed 's/.*) //' "/proc/$pid/stat" | awk -v p="$pid" '{print p, $12 + $13}'
	done
}

# cpu_snapshot FILE GROUP=PID… : one line per process, "group pid ticks",
# plus "idle - ticks" from /proc/stat.
cpu_snapshot() {
	local out=$1
	shift
	: >"$out"
	for spec in "$@"; do
		local group=${spec%%=*} pids=${spec#*=}
		# shellcheck disable=SC2086
		cpu_ticks ${pids//,/ } | sed "s/^/$group /" >>"$out"
	done
	awk '/^cpu / {print "idle -", $5 + $6}' /proc/stat >>"$out"
}

# cpu_share BEFORE AFTER SECONDS: cores used per group between two snapshots.
cpu_share() {
	awk -v secs="$3" -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" '
		FNR == NR { before[$1 " " $2] = $3; next }
		{ d = $3 - (($1 " " $2) in before ? before[$1 " " $2] : 0); used[$1] += d; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
		END {
			line = ""
			for (i = 1; i <= n; i++) {
				g = order[i]
				if (g == "idle") line = line sprintf("  idle %.0f %%", 100 * used[g] / hz / secs / cores)
				else line = line sprintf("  %s %.2f", g, used[g] / hz / secs)
			}
			print "   cores used:" line
		}' "$1" "$2"
}

wait_ready() {
	for _ in $(seq 1 100); do
		curl -fs "http://$1/readyz" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "not ready: $1"
	tail -5 "$WORK"/*.log
	exit 1
}

# round BROKER_URL NAME [LOAD FLAGS…]: fresh database and namespace, two
# servers, one persister, one load run; prints the RESULT line.
round() {
	local url=$1 name=$2
	shift 2
	local db="chatbench_$RANDOM$RANDOM" ns="chatbench$RANDOM"
	psql -q "$PG/postgres" -c "CREATE DATABASE $db" >/dev/null
	DBS+=("$db")
	local dburl="$PG/$db?sslmode=disable"
	local common=(--db "$dburl" --broker "$url" --namespace "$ns")
	local serve=()
	# shellcheck disable=SC2206
	[ -n "${SERVE_FLAGS:-}" ] && serve=($SERVE_FLAGS)
	local prof1=() prof3=() profl=()
	if [ "${PROFILE:-0}" = 1 ]; then
		prof1=(--pprof-addr "127.0.0.1:${BASE}6")
		prof3=(--pprof-addr "127.0.0.1:${BASE}7")
		profl=(--cpu-profile "$WORK/loadgen.pprof")
	fi
	"$SL" chat serve --addr "127.0.0.1:${BASE}1" --rate-limit off --data "$WORK/s1" "${common[@]}" "${serve[@]}" "${prof1[@]}" >"$WORK/s1.log" 2>&1 &
	local s1=$!
	wait_ready "127.0.0.1:${BASE}1" # the first server migrates the schema
	"$SL" chat serve --addr "127.0.0.1:${BASE}2" --rate-limit off --data "$WORK/s2" "${common[@]}" "${serve[@]}" >"$WORK/s2.log" 2>&1 &
	local s2=$!
	"$SL" chat persist --addr "127.0.0.1:${BASE}3" --data "$WORK/p" "${common[@]}" "${prof3[@]}" >"$WORK/p.log" 2>&1 &
	local p=$!
	PIDS+=("$s1" "$s2" "$p")
	wait_ready "127.0.0.1:${BASE}2"
	wait_ready "127.0.0.1:${BASE}3"
	local profiling=""
	if [ "${PROFILE:-0}" = 1 ]; then
		(
			sleep 4 # past the warm-up
			curl -fsS -o "$WORK/server.pprof" "http://127.0.0.1:${BASE}6/debug/pprof/profile?seconds=5" &
			curl -fsS -o "$WORK/persister.pprof" "http://127.0.0.1:${BASE}7/debug/pprof/profile?seconds=5"
			wait
		) &
		profiling=$!
	fi
	"$SL" load chat --servers "ws://127.0.0.1:${BASE}1,ws://127.0.0.1:${BASE}2" --connections "$CONNS" \
		--rooms "$ROOMS" --window "$WINDOW" --warmup "$WARMUP" --db "$dburl" "${profl[@]}" "$@" >"$WORK/load.out" 2>&1 &
	local load=$!
	(
		sleep 4 # past the warm-up, like the profile
		local groups=("server1=$s1" "server2=$s2" "persister=$p" "loadgen=$load"
			"nats=$(pgrep -d, -x nats-server || true)" "rabbitmq=$(pgrep -d, -x beam.smp || true)"
			"postgres=$(pgrep -d, -x postgres || true)")
		cpu_snapshot "$WORK/cpu.before" "${groups[@]}"
		sleep 5
		groups[6]="postgres=$(pgrep -d, -x postgres || true)" # backends started meanwhile count whole
		cpu_snapshot "$WORK/cpu.after" "${groups[@]}"
		kill -0 "$load" 2>/dev/null && cpu_share "$WORK/cpu.before" "$WORK/cpu.after" 5 >&2
	) &
	local sampling=$!
	wait "$load" || true
	wait "$sampling" || true
	if [ -n "$profiling" ]; then
		wait "$profiling" || true
		for who in server persister loadgen; do
			[ -s "$WORK/$who.pprof" ] || continue
			echo "   CPU profile of the $who (top 25, cumulative):" >&2
			go tool pprof -top -cum -nodecount 25 "$SL" "$WORK/$who.pprof" 2>/dev/null | tail -25 | sed 's/^/   /' >&2
		done
	fi
	kill "$s1" "$s2" "$p" 2>/dev/null || true
	wait "$s1" "$s2" "$p" 2>/dev/null || true
	psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	drop_broker_state "$name" "$ns"
	if ! grep -q '^RESULT' "$WORK/load.out"; then
		echo "   load run failed:" >&2
		tail -15 "$WORK/load.out" >&2
		return 1
	fi
	grep '^RESULT' "$WORK/load.out"
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# stats: median [min–max] of numbers on stdin.
stats() {
	sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.0f [%.0f–%.0f]", m, v[1], v[NR]}'
}

for broker in $BROKERS; do
	case $broker in
	nats) url=$NATS_URL ;;
	amqp) url=$AMQP_URL ;;
	*) echo "unknown broker $broker (nats, amqp)"; exit 2 ;;
	esac
	echo "== $broker: $ROUNDS rounds × $MESSAGES messages, $CONNS connections, $ROOMS rooms, window $WINDOW"
	: >"$WORK/$broker.results"
	: >"$WORK/ceiling.results"
	for r in $(seq 1 "$ROUNDS"); do
		line=$(round "$url" "$broker" --messages "$MESSAGES")
		echo "$line" >>"$WORK/$broker.results"
		printf '   round %d: acked %s/s  delivered %s/s  persisted %s/s  recv p50 %s ms p99 %s ms  lost %s dup %s errors %s\n' "$r" \
			"$(echo "$line" | field acked_per_s)" "$(echo "$line" | field delivered_per_s)" \
			"$(echo "$line" | field persisted_per_s)" "$(echo "$line" | field recv_p50_ms)" \
			"$(echo "$line" | field recv_p99_ms)" "$(echo "$line" | field lost)" \
			"$(echo "$line" | field duplicated)" "$(echo "$line" | field errors)"
		if [ "$broker" = nats ]; then
			c=$(ceiling)
			echo "$c" >>"$WORK/ceiling.results"
			printf '   round %d: broker ceiling (publish+consume) %s msg/s\n' "$r" "$c"
		fi
	done
	for f in acked_per_s delivered_per_s persisted_per_s; do
		printf '   %-16s %s\n' "$f" "$(field "$f" <"$WORK/$broker.results" | stats)"
	done
	if [ "$broker" = nats ]; then
		printf '   %-16s %s\n' "ceiling" "$(stats <"$WORK/ceiling.results")"
		med() { sort -g | awk '{v[NR]=$1} END {print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
		cmed=$(med <"$WORK/ceiling.results")
		printf '   chat / ceiling: acked %.2f×, persisted %.2f×\n' \
			"$(field acked_per_s <"$WORK/$broker.results" | med | awk -v c="$cmed" '{print $1 / c}')" \
			"$(field persisted_per_s <"$WORK/$broker.results" | med | awk -v c="$cmed" '{print $1 / c}')"
	fi
	delivered=$(field delivered_per_s <"$WORK/$broker.results" | sort -g | awk '{v[NR]=$1} END {print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}')
	rate=$(awk -v d="$delivered" 'BEGIN {printf "%d", d*0.8}')
	target_rate=$((TARGET * 8 / 10))
	[ "${PACE_AT_MEDIAN:-1}" = 1 ] || rate=""
	for r in $rate $target_rate ${PACED_RATES:-}; do
		paced=$((r * 20)) # a 20-second paced run
		if [ "$r" = "$rate" ]; then
			echo "== $broker: paced at $r msg/s (80 % of the median delivered rate), $paced messages"
		elif [ "$r" = "$target_rate" ]; then
			echo "== $broker: paced at $r msg/s (80 % of the $TARGET msg/s target), $paced messages"
		else
			echo "== $broker: paced at $r msg/s (PACED_RATES), $paced messages"
		fi
		line=$(round "$url" "$broker" --messages "$paced" --rate "$r")
		printf '   acked %s/s  recv p50 %s ms  p99 %s ms  ack p99 %s ms  lost %s dup %s\n' \
			"$(echo "$line" | field acked_per_s)" "$(echo "$line" | field recv_p50_ms)" "$(echo "$line" | field recv_p99_ms)" \
			"$(echo "$line" | field ack_p99_ms)" "$(echo "$line" | field lost)" "$(echo "$line" | field duplicated)"
	done
done
