#!/usr/bin/env bash
# The load balancer next to the proxies people run, in one run: the same
# two backends (nginx answering a fixed 2-byte body) reached directly,
# through scalelab lb, HAProxy, nginx and Caddy — each proxy configured the
# way its own users configure it for this job (keep-alive to the
# upstreams, round robin, no access log) — with wrk driving all alike.
# Rounds alternate between the five targets.
#
#   bench/lb.sh                               # 3 rounds of 10 s per target
#   ROUNDS=5 DURATION=20s CONNS=128 bench/lb.sh
#
# Prints each round, then per target the median requests/s with its
# spread, the median p99, and the ratios to HAProxy and Caddy. Installs
# wrk, nginx-light, haproxy and caddy from Debian when missing; loopback
# only. On one small machine the load generator, the proxy and the
# backends share the cores: only the ratios within one run compare.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
B1=${B1:-18301} B2=${B2:-18302}
SL=${SL:-18310} SL_ADMIN=${SL_ADMIN:-18311} HAP=${HAP:-18320} NGX=${NGX:-18330} CADDY=${CADDY:-18340}

. "$ROOT/bench/lib/need.sh"
need wrk
need nginx nginx-light
need haproxy
need caddy
command -v go >/dev/null || { echo "bench: go is missing (see README)"; exit 1; }

WORK=$(mktemp -d)
SL_PID="" HAP_PID="" CADDY_PID=""
cleanup() {
	for p in "$SL_PID" "$HAP_PID" "$CADDY_PID"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for f in "$WORK"/nginx-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== versions"
echo "haproxy: $(haproxy -v 2>&1 | head -1)"
echo "nginx:   $(nginx -v 2>&1)"
echo "caddy:   $(caddy version 2>&1 | head -1)"
echo "wrk:     $(wrk -v 2>&1 | head -1)"

echo "== build"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab)
mkdir -p "$WORK/tmp"

nginx_conf() { # name workers body
	cat >"$WORK/nginx-$1.conf" <<NGX
worker_processes $2;
pid $WORK/nginx-$1.pid;
error_log $WORK/nginx-$1-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    keepalive_requests 1000000;
$3
}
NGX
	nginx -p "$WORK" -c "$WORK/nginx-$1.conf"
}

echo "== backends: nginx on :$B1 and :$B2 (1 worker each), a fixed 2-byte answer"
nginx_conf backends 1 "    server { listen 127.0.0.1:$B1; location / { return 200 'ok'; } }
    server { listen 127.0.0.1:$B2; location / { return 200 'ok'; } }"

echo "== scalelab lb on :$SL (round-robin, active checks on)"
"$WORK/scalelab" lb serve --addr "127.0.0.1:$SL" --admin-addr "127.0.0.1:$SL_ADMIN" --admin-token "bench-token-0123456789abcdef0123456789" \
	--data "$WORK" --policy round-robin --health-path / \
	--backend "http://127.0.0.1:$B1" --backend "http://127.0.0.1:$B2" >"$WORK/scalelab.log" 2>&1 &
SL_PID=$!

echo "== haproxy on :$HAP (nbthread 2, roundrobin, http-reuse safe)"
cat >"$WORK/haproxy.cfg" <<HAPCFG
global
    nbthread 2
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:$HAP
    default_backend be
backend be
    balance roundrobin
    http-reuse safe
    server b1 127.0.0.1:$B1
    server b2 127.0.0.1:$B2
HAPCFG
haproxy -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAP_PID=$!

echo "== nginx on :$NGX (2 workers, upstream keepalive)"
nginx_conf proxy 2 "    upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 64; }
    server { listen 127.0.0.1:$NGX; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

echo "== caddy on :$CADDY (reverse_proxy, round_robin)"
cat >"$WORK/Caddyfile" <<CADDYCFG
{
    admin off
    auto_https off
}
http://127.0.0.1:$CADDY {
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:$B1 127.0.0.1:$B2 {
        lb_policy round_robin
    }
}
CADDYCFG
XDG_DATA_HOME="$WORK" XDG_CONFIG_HOME="$WORK" caddy run --config "$WORK/Caddyfile" --adapter caddyfile >"$WORK/caddy.log" 2>&1 &
CADDY_PID=$!

for port in "$B1" "$SL" "$HAP" "$NGX" "$CADDY"; do
	for _ in $(seq 1 100); do [ "$(curl -s "http://127.0.0.1:$port/" 2>/dev/null)" = ok ] && break; sleep 0.1; done
	[ "$(curl -s "http://127.0.0.1:$port/")" = ok ] || { echo "bench: :$port does not answer ok"; cat "$WORK"/*.log; exit 1; }
done

run_wrk() { # port → "rps p99_ms"
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$1/" >"$WORK/wrk.out" 2>&1
	local rps p99
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out")
	p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.out")
	echo "$rps $p99"
}

NAMES=(direct scalelab haproxy nginx caddy)
PORTS=("$B1" "$SL" "$HAP" "$NGX" "$CADDY")
echo "== wrk -t$THREADS -c$CONNS -d$DURATION, GET /, $ROUNDS rounds (targets alternate)"
for p in "${PORTS[@]}"; do run_wrk "$p" >/dev/null; done # warm-up
declare -A RPS P99
for r in $(seq 1 "$ROUNDS"); do
	line="round $r"
	for i in "${!NAMES[@]}"; do
		read -r rps p99 < <(run_wrk "${PORTS[$i]}")
		RPS[${NAMES[$i]}]+="$rps " P99[${NAMES[$i]}]+="$p99 "
		line+=$(printf "  %s %6.0f (p99 %5.2f ms)" "${NAMES[$i]}" "$rps" "$p99")
	done
	echo "$line"
done

median() { printf "%s\n" $@ | sort -g | awk '{v[NR]=$1} END {printf "%.2f %.2f %.2f\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
echo
declare -A MED
for n in "${NAMES[@]}"; do
	read -r med lo hi < <(median ${RPS[$n]})
	read -r p99 _ _ < <(median ${P99[$n]})
	MED[$n]=$med
	printf "%-9s median %8.0f req/s  (min %.0f, max %.0f)  median p99 %6.2f ms\n" "$n" "$med" "$lo" "$hi" "$p99"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "ratio scalelab / haproxy = $(ratio "${MED[scalelab]}" "${MED[haproxy]}")   (goal >= 0.70)"
echo "ratio scalelab / caddy   = $(ratio "${MED[scalelab]}" "${MED[caddy]}")   (goal >= 1.00)"
echo "ratio scalelab / nginx   = $(ratio "${MED[scalelab]}" "${MED[nginx]}")"
echo "ratio proxies / direct: scalelab $(ratio "${MED[scalelab]}" "${MED[direct]}"), haproxy $(ratio "${MED[haproxy]}" "${MED[direct]}"), nginx $(ratio "${MED[nginx]}" "${MED[direct]}"), caddy $(ratio "${MED[caddy]}" "${MED[direct]}")"
echo
echo "== scalelab lb's view of its backends after the run"
curl -s "http://127.0.0.1:$SL_ADMIN/admin/backends"
echo
