#!/usr/bin/env bash
# The crawler beside Colly and Scrapy on one synthetic web, in one run,
# rounds interleaved. The web: `scalelab crawler testweb`, HOSTS hosts ×
# PAGES pages (default 1,000 × 100), every Crawl-delay set to DELAY
# (default 20 ms) so one per-host delay binds all three crawlers; every
# crawl starts from all the hosts' home pages and runs DURATION (default
# 40 s), then is stopped. The web's own fetch log is the judge:
#   pages/s     ordinary pages (homes and /p/) served, over the span from
#               the crawl's first fetch to its last
#   violations  robots (a fetch robots.txt forbids, or any fetch of a host
#               whose robots.txt answered 5xx or timed out), politeness (two
#               fetches of a host closer than DELAY, end to start, or
#               overlapping), duplicates (a URL fetched twice)
# The crawlers:
#   scalelab    `scalelab crawler serve` on its embedded SQLite, FETCHERS
#               fetchers (default 128), delay DELAY, bodies in the blob dir
#   colly       bench/collycrawl: Colly v2.3.0, async, robots.txt obeyed,
#               one LimitRule per host (Parallelism 1, Delay DELAY)
#   scrapy      bench/scrapycrawl/crawl.py: Debian's Scrapy 2.8, Scrapy's
#               broad-crawl settings, ROBOTSTXT_OBEY, one request per
#               domain, DOWNLOAD_DELAY DELAY, the downloader-aware queue
# Besides, two limits: politeness (HOSTS ÷ DELAY pages/s) and the web's
# serving ceiling (wrk, 64 connections, the same pages by Host header:
# what this machine serves with no crawler work at all).
#
#   bench/crawler.sh                      # ROUNDS=3 DURATION=40
#   ROUNDS=1 DURATION=20 HOSTS=300 SKIP=scrapy bench/crawler.sh
#
# Goals: scalelab ≥ 1.5× colly, ≥ 3× scrapy, ≥ 0.8× the binding limit,
# 0 violations. Installs wrk and python3-scrapy when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-40}
HOSTS=${HOSTS:-1000}
PAGES=${PAGES:-100}
DELAY_MS=${DELAY_MS:-20}
FETCHERS=${FETCHERS:-128}
DB=${DB:-} # the crawler's store: "" its embedded SQLite, or postgres://… / mysql://…
SKIP=${SKIP:-}
PORT=${PORT:-18480}
BASE_IP=${BASE_IP:-127.40.0.0}
DNS=127.0.0.1:$((PORT + 1))
CONTROL=127.0.0.1:$((PORT + 2))
API=127.0.0.1:$((PORT + 3))
TOKEN=bench-crawler-token-0123456789abcdef
PY=/usr/bin/python3 # Debian's python, where python3-scrapy installs

. "$ROOT/bench/lib/need.sh"
need wrk wrk
need curl curl
"$PY" -c 'import scrapy' 2>/dev/null || {
	echo "== installing python3-scrapy (apt-get)"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-scrapy >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-scrapy >/dev/null 2>&1; }
	"$PY" -c 'import scrapy' || { echo "bench: python3-scrapy could not be installed"; exit 1; }
}

WORK=$(mktemp -d /tmp/bench-crawler.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab)
(cd "$ROOT/bench/collycrawl" && go build -o "$WORK/collycrawl" .)
COLLY_VERSION=$(cd "$ROOT/bench/collycrawl" && go list -m -f '{{.Version}}' github.com/gocolly/colly/v2)
SCRAPY_VERSION=$("$PY" -c 'import scrapy; print(scrapy.__version__)')

"$WORK/scalelab" crawler testweb --hosts "$HOSTS" --pages-per-host "$PAGES" --crawl-delay "${DELAY_MS}ms" --slow 3s \
	--base-ip "$BASE_IP" --port "$PORT" --dns "$DNS" --control "$CONTROL" >"$WORK/testweb.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fs "http://$CONTROL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://$CONTROL/healthz" >/dev/null || { cat "$WORK/testweb.log"; exit 1; }
WEB_IP=$(sed -n 's/.*on \([0-9.]*\)… port.*/\1/p' "$WORK/testweb.log")

# judge NAME: the web's log since the last reset → "pages pages/s robots politeness duplicates"
judge() {
	curl -fs "http://$CONTROL/check?delay=${DELAY_MS}ms&slack=0ms" >"$WORK/check.json"
	curl -fs "http://$CONTROL/log" >"$WORK/log.ndjson"
	"$PY" - "$WORK/check.json" "$WORK/log.ndjson" <<'PY'
import json, sys
from datetime import datetime
c = json.load(open(sys.argv[1]))
first = last = None
for line in open(sys.argv[2]):
    f = json.loads(line)
    s, e = f["start"], f["end"]
    first = s if first is None or s < first else first
    last = e if last is None or e > last else last
def t(x):
    x = x.replace("Z", "+00:00")
    head, _, frac = x.partition(".")
    if frac:
        digits = "".join(ch for ch in frac if ch.isdigit())
        tz = frac[len(digits):]
        x = head + "." + digits[:6] + tz
    return datetime.fromisoformat(x).timestamp()
span = t(last) - t(first) if first else 0
rate = c["pages"] / span if span > 0 else 0
print(c["pages"], f"{rate:.0f}", c["robots_violations"], c["politeness_violations"], c["duplicate_fetches"])
PY
	curl -fs -X POST "http://$CONTROL/reset" >/dev/null
}

stop() { kill -TERM "$1" 2>/dev/null || true; sleep 1; kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

seeds_json() {
	"$PY" -c "import json,sys; h,p,d,f=map(int,sys.argv[1:]); print(json.dumps({'seeds':[f'http://host{i}.test:{p}/' for i in range(h)],'delay_ms':d,'fetchers':f}))" \
		"$HOSTS" "$PORT" "$DELAY_MS" "$FETCHERS"
}

run_scalelab() {
	local data="$WORK/data-$1"
	local db=()
	[ -n "$DB" ] && db=(--db "$DB")
	"$WORK/scalelab" crawler serve --addr "$API" --data "$data" --admin-token "$TOKEN" --dns-server "$DNS" \
		--allow-net "$BASE_IP/16" --fetch-timeout 2s "${db[@]}" >"$WORK/scalelab-$1.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do curl -fs "http://$API/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	seeds_json | curl -fs -X POST -H "Authorization: Bearer $TOKEN" --data-binary @- "http://$API/api/v1/crawls" >/dev/null
	sleep "$DURATION"
	stop "$pid"
	rm -rf "$data"
}
run_colly() {
	"$WORK/collycrawl" --hosts "$HOSTS" --port "$PORT" --dns "$DNS" --delay "${DELAY_MS}ms" --timeout 2s >"$WORK/colly.log" 2>&1 &
	local pid=$!
	sleep "$DURATION"
	stop "$pid"
}
run_scrapy() {
	"$PY" "$ROOT/bench/scrapycrawl/crawl.py" --hosts "$HOSTS" --port "$PORT" --dns "$DNS" --delay "$(awk "BEGIN{print $DELAY_MS/1000}")" \
		--timeout 2 >"$WORK/scrapy.log" 2>&1 &
	local pid=$!
	sleep "$DURATION"
	stop "$pid"
}
run_wrk() {
	cat >"$WORK/pages.lua" <<LUA
local hosts, pages, n = $HOSTS, $PAGES, 0
request = function()
  n = n + 1
  return wrk.format("GET", "/p/" .. (math.floor(n / hosts) % pages) .. ".html", {Host = "host" .. (n % hosts) .. ".test:$PORT"})
end
LUA
	wrk -t2 -c64 -d10s -s "$WORK/pages.lua" "http://$WEB_IP:$PORT/" | awk '/Requests\/sec/ {printf "%.0f\n", $2}'
	curl -fs -X POST "http://$CONTROL/reset" >/dev/null
}

echo "== date $(date -u +%FT%TZ); $(nproc) cores; web: $HOSTS hosts × $PAGES pages, delay ${DELAY_MS} ms, ${DURATION} s a crawl"
echo "== anchors: Colly $COLLY_VERSION (bench/collycrawl, Go, async, one LimitRule per host), Scrapy $SCRAPY_VERSION (Debian python3-scrapy, broad-crawl settings)"
TARGETS="scalelab colly scrapy"
for r in $(seq "$ROUNDS"); do
	for t in $TARGETS; do
		case " $SKIP " in *" $t "*) continue ;; esac
		"run_$t" "$r"
		res=$(judge)
		echo "round $r  $t  $res" | tee -a "$WORK/results"
	done
done
CEIL=$(run_wrk)
LIMIT=$((HOSTS * 1000 / DELAY_MS))
echo "== serving ceiling (wrk -c64, no crawler): $CEIL pages/s; politeness limit: $LIMIT pages/s"

"$PY" - "$WORK/results" "$CEIL" "$LIMIT" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
ceil, limit = float(sys.argv[2]), float(sys.argv[3])
by = {}
for r in rows:
    by.setdefault(r[2], []).append((float(r[4]), int(r[5]), int(r[6]), int(r[7])))
med = {}
print(f"{'crawler':10} {'pages/s median (min–max)':28} {'robots':>7} {'polite':>7} {'dups':>7}")
for t, v in by.items():
    rates = [x[0] for x in v]
    med[t] = statistics.median(rates)
    print(f"{t:10} {med[t]:8.0f} ({min(rates):.0f}–{max(rates):.0f}){'':12} {sum(x[1] for x in v):7} {sum(x[2] for x in v):7} {sum(x[3] for x in v):7}")
s = med.get("scalelab")
if s:
    for t, goal in (("colly", 1.5), ("scrapy", 3.0)):
        if med.get(t):
            print(f"scalelab / {t} = {s / med[t]:.2f}  (goal ≥ {goal})")
    bind = min(ceil, limit)
    print(f"scalelab / binding limit ({'serving ceiling' if ceil < limit else 'politeness'}, {bind:.0f}/s) = {s / bind:.2f}  (goal ≥ 0.8)")
PY
