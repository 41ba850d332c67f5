#!/usr/bin/env bash
# Cached redirects: scalelab's shortener next to nginx answering the same
# codes with `return 302` from a map (the practical limit for a redirect on
# this machine), in one run, with wrk driving both alike. A third server,
# bench/redirectfloor (bare net/http: map lookup, 302), shows what the Go
# HTTP stack itself reaches here, so the gap can be split into "Go's
# net/http vs nginx" and "what the shortener adds".
#
#   bench/shortener.sh                      # 3 rounds of 10 s each per server
#   ROUNDS=5 DURATION=20s CONNS=128 bench/shortener.sh
#
# Prints each round, the median and spread of requests/s, the ratio, and
# the p99 of an open-model run (scalelab load) at half of scalelab's median
# peak rate, with the same run against the floor and nginx for reference.
# Installs wrk and nginx-light if missing; loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
LINKS=${LINKS:-10000}
SL_PORT=${SL_PORT:-18182}
NGX_PORT=${NGX_PORT:-18183}
FLOOR_PORT=${FLOOR_PORT:-18184}

. "$ROOT/bench/lib/need.sh"
need wrk
need nginx nginx-light
need python3
command -v go >/dev/null || { echo "bench: go is missing (see README)"; exit 1; }

WORK=$(mktemp -d)
SL_PID="" FLOOR_PID=""
cleanup() {
	[ -n "$SL_PID" ] && kill "$SL_PID" 2>/dev/null && wait "$SL_PID" 2>/dev/null || true
	[ -n "$FLOOR_PID" ] && kill "$FLOOR_PID" 2>/dev/null || true
	[ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab && go build -o "$WORK/redirectfloor" ./bench/redirectfloor)

echo "== start scalelab shortener on 127.0.0.1:$SL_PORT (embedded defaults)"
"$WORK/scalelab" shortener serve --addr "127.0.0.1:$SL_PORT" --data "$WORK/data" \
	--create-limit off --worker-id 1 >"$WORK/scalelab.log" 2>&1 &
SL_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$SL_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== create $LINKS links; write the same code→URL map for nginx"
python3 - "$SL_PORT" "$LINKS" "$WORK" <<'PY'
import http.client, json, sys
port, n, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
with open(f"{work}/paths.txt", "w") as paths, open(f"{work}/map.conf", "w") as nmap:
    for i in range(n):
        code, url = f"bch{i}", f"https://example.com/page/{i}?ref=bench"
        conn.request("POST", "/api/v1/links", json.dumps({"url": url, "alias": code}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse(); r.read()
        if r.status != 201:
            sys.exit(f"create {code}: {r.status}")
        paths.write(f"/{code}\n")
        nmap.write(f"/{code} \"{url}\";\n")
PY

cat >"$WORK/nginx.conf" <<NGX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
    uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
    map_hash_max_size 65536;
    map_hash_bucket_size 128;
    map \$uri \$target { include $WORK/map.conf; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            if (\$target) { return 302 \$target; }
            return 404;
        }
    }
}
NGX
mkdir -p "$WORK/tmp"
echo "== start nginx on 127.0.0.1:$NGX_PORT (2 workers)"
nginx -p "$WORK" -c "$WORK/nginx.conf"
for _ in $(seq 1 50); do [ -f "$WORK/nginx.pid" ] && break; sleep 0.1; done

echo "== start the net/http floor on 127.0.0.1:$FLOOR_PORT"
"$WORK/redirectfloor" -addr "127.0.0.1:$FLOOR_PORT" -map "$WORK/map.conf" &
FLOOR_PID=$!
sleep 0.5

for port in "$SL_PORT" "$NGX_PORT" "$FLOOR_PORT"; do
	loc=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$port/bch42")
	[ "$loc" = "302 https://example.com/page/42?ref=bench" ] || { echo "bench: :$port answered '$loc'"; exit 1; }
done

cat >"$WORK/paths.lua" <<LUA
local paths = {}
for line in io.lines("$WORK/paths.txt") do paths[#paths + 1] = line end
math.randomseed(42)
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
LUA

run_wrk() { # port → "rps p99_ms"
	wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$WORK/paths.lua" "http://127.0.0.1:$1" >"$WORK/wrk.out" 2>&1
	local rps p99
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.out")
	p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.out")
	echo "$rps $p99"
}

echo "== versions: $(nginx -v 2>&1 | sed 's/.*: //') (2 workers, access log off, \"return 302\" from a map — how its users serve fixed redirects), driven by $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}') like the other two"
echo "== wrk -t$THREADS -c$CONNS -d$DURATION, random codes among $LINKS, $ROUNDS rounds (servers alternate)"
run_wrk "$SL_PORT" >/dev/null # warm-up: connections, page cache, Go heap
SL_RPS=() NGX_RPS=() FLOOR_RPS=()
for r in $(seq 1 "$ROUNDS"); do
	read -r s_rps s_p99 < <(run_wrk "$SL_PORT")
	read -r n_rps n_p99 < <(run_wrk "$NGX_PORT")
	read -r f_rps f_p99 < <(run_wrk "$FLOOR_PORT")
	SL_RPS+=("$s_rps") NGX_RPS+=("$n_rps") FLOOR_RPS+=("$f_rps")
	printf "round %d  scalelab %7.0f req/s (p99 %5.2f ms)   nginx %7.0f req/s (p99 %5.2f ms)   net/http floor %7.0f req/s (p99 %5.2f ms)   ratio %.2f\n" \
		"$r" "$s_rps" "$s_p99" "$n_rps" "$n_p99" "$f_rps" "$f_p99" "$(awk -v a="$s_rps" -v b="$n_rps" 'BEGIN {print a / b}')"
done

stats() { printf "%s\n" "$@" | sort -g | awk '{v[NR]=$1} END {printf "%.0f %.0f %.0f\n", v[int((NR+1)/2)], v[1], v[NR]}'; }
read -r s_med s_min s_max < <(stats "${SL_RPS[@]}")
read -r n_med n_min n_max < <(stats "${NGX_RPS[@]}")
read -r f_med f_min f_max < <(stats "${FLOOR_RPS[@]}")
echo
printf "scalelab        median %8d req/s  (min %d, max %d)\n" "$s_med" "$s_min" "$s_max"
printf "nginx           median %8d req/s  (min %d, max %d)\n" "$n_med" "$n_min" "$n_max"
printf "net/http floor  median %8d req/s  (min %d, max %d)\n" "$f_med" "$f_min" "$f_max"
printf "ratio     scalelab / nginx = %.2f   (target >= 0.60)\n" "$(awk -v a="$s_med" -v b="$n_med" 'BEGIN {print a / b}')"
printf "ratio     net/http floor / nginx = %.2f,  scalelab / net/http floor = %.2f\n" \
	"$(awk -v a="$f_med" -v b="$n_med" 'BEGIN {print a / b}')" "$(awk -v a="$s_med" -v b="$f_med" 'BEGIN {print a / b}')"

HALF=$((s_med / 2))
open_loop() { # port label
	"$WORK/scalelab" load http --rate "$HALF/s" --duration "$DURATION" --connections "$CONNS" --quiet \
		--out "$WORK/open-$2" "http://127.0.0.1:$1/bch{{rand 0 $((LINKS - 1))}}" >/dev/null
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); l=d["latency_ms"]
print("%-15s achieved %6.0f req/s  errors %d  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms" % (
    sys.argv[2], d["rps"], d["errors"], l["p50"], l["p90"], l["p99"], l["p999"], l["max"]))' "$WORK/open-$2/summary.json" "$2"
}
echo
echo "== open model (scalelab load) at half of scalelab's median peak: $HALF req/s for $DURATION, random codes"
open_loop "$SL_PORT" scalelab
open_loop "$FLOOR_PORT" "net/http floor"
open_loop "$NGX_PORT" nginx
p99=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["latency_ms"]["p99"])' "$WORK/open-scalelab/summary.json")
printf "p99 at half peak = %s ms   (target < 5 ms)\n" "$p99"

echo
echo "== where scalelab's redirects were answered from (Prometheus counters)"
curl -s "http://127.0.0.1:$SL_PORT/metrics" | grep '^scalelab_shortener_lookups_total' || true
curl -s "http://127.0.0.1:$SL_PORT/metrics" | grep -E '^scalelab_shortener_click_events_(recorded|dropped|counted)_total' || true
