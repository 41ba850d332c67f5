#!/usr/bin/env bash
# The news feed under the bench's mixed load, push, hybrid and pull in one
# run, rounds interleaved. One generated graph (POST /api/v1/graph: USERS
# accounts following FOLLOWS each on average with Zipf ZIPF popularity,
# and a celebrity followed by CELEB of them), copied fresh for every run;
# every timeline cached at the start (POST /api/v1/warm: everyone reads).
# Each run: `scalelab feed serve --mode M` on that copy (embedded SQLite,
# in-process caches unless CACHE=redis://…), and `scalelab feed load`:
#   reads       RATE timeline reads/s for DURATION, open model (latency
#               from each request's scheduled time), 64 connections, each
#               reader's first page of 20
#   posts       POSTS/s by random accounts, and CELEB_POSTS by the celebrity
#   visible     the server's time from a celebrity post to its last fan-out
#               batch written; and the client's, polling 100 followers'
#               first pages until every one shows it
#   server p99  the bucket of the server's own read histogram holding its
#               99th percentile over the run (what the client sees beyond
#               it is queueing and scheduling, on a machine shared with the
#               load generator)
#   checked     CHECK readers' whole timelines against the merge of their
#               followees' own post lists (pull's answer): missing,
#               duplicated, extra
# No peer system runs here (Mastodon and the like are not buildable on
# this machine); the comparison is between the modes, in the same run.
#
#   bench/feed.sh                                  # ROUNDS=3 DURATION=20
#   ROUNDS=1 DURATION=10 USERS=20000 CELEB=15000 bench/feed.sh
#
# Goals: hybrid's celebrity post visible to every follower within 5 s,
# writing ≤ 1/10 of push's timeline entries; timeline read p99 ≤ 10 ms at
# 5,000 reads/s; 0 missing or duplicated items.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
USERS=${USERS:-120000}
CELEB=${CELEB:-100000}
FOLLOWS=${FOLLOWS:-20}
ZIPF=${ZIPF:-1.4}
THRESHOLD=${THRESHOLD:-10000}
RATE=${RATE:-5000}
POSTS=${POSTS:-50}
CELEB_POSTS=${CELEB_POSTS:-2}
CHECK=${CHECK:-100}
MODES=${MODES:-push hybrid pull}
CACHE=${CACHE:-}
PORT=${PORT:-18491}
TOKEN=bench-feed-token-0123456789abcdef
ADDR=127.0.0.1:$PORT

. "$ROOT/bench/lib/need.sh"
need curl curl
need python3 python3

WORK=$(mktemp -d /tmp/bench-feed.XXXXXX)
PID=""
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building"
(cd "$ROOT" && go build -o "$WORK/scalelab" ./cmd/scalelab)

serve() { # MODE DATA [NAMESPACE]
	local cache=()
	[ -n "$CACHE" ] && cache=(--cache "$CACHE" --namespace "$3")
	"$WORK/scalelab" feed serve --addr "$ADDR" --data "$2" --admin-token "$TOKEN" --mode "$1" --celebrity "$THRESHOLD" \
		--write-limit off --timeline-sets $((USERS + 1000)) "${cache[@]}" >"$WORK/serve.log" 2>&1 &
	PID=$!
	for _ in $(seq 300); do curl -fs "http://$ADDR/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
	cat "$WORK/serve.log"
	exit 1
}
stop() { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; }

echo "== date $(date -u +%FT%TZ); $(nproc) cores; graph: $USERS users × ~$FOLLOWS follows (Zipf $ZIPF), celebrity with $CELEB followers; hybrid threshold $THRESHOLD"
echo "== load: $RATE reads/s (open model, 64 connections) + $POSTS posts/s + $CELEB_POSTS celebrity posts, $DURATION s a run; cache ${CACHE:-in-process}; store SQLite"
serve hybrid "$WORK/template" seed
start=$(date +%s)
curl -fs -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
	--data "{\"users\":$USERS,\"celebrity_followers\":$CELEB,\"follows\":$FOLLOWS,\"zipf\":$ZIPF,\"seed\":1}" \
	"http://$ADDR/api/v1/graph" >"$WORK/ids.json"
stop
echo "== graph generated and stored in $(($(date +%s) - start)) s"

n=0
for r in $(seq "$ROUNDS"); do
	for m in $MODES; do
		n=$((n + 1))
		rm -rf "$WORK/run"
		cp -a "$WORK/template" "$WORK/run"
		serve "$m" "$WORK/run" "feedbench$n-$$"
		curl -fs -X POST -H "Authorization: Bearer $TOKEN" "http://$ADDR/api/v1/warm" >/dev/null
		res=$("$WORK/scalelab" feed load --target "http://$ADDR" --admin-token "$TOKEN" --ids "$WORK/ids.json" --rate "$RATE" \
			--posts "$POSTS" --duration "${DURATION}s" --celebrity-posts "$CELEB_POSTS" --check "$CHECK")
		stop
		echo "round $r $res" | tee -a "$WORK/results"
	done
done

python3 - "$WORK/results" "$RATE" "$CELEB_POSTS" <<'PY'
import json, statistics, sys
rate, celeb_posts = float(sys.argv[2]), int(sys.argv[3])
by = {}
for line in open(sys.argv[1]):
    r = json.loads(line.split(" ", 2)[2])
    by.setdefault(r["mode"], []).append(r)
def med(rs, k):
    v = [r[k] for r in rs]
    return statistics.median(v), min(v), max(v)
def total(r):
    return r["timeline_entries"] + r["celebrity_targets"] * celeb_posts
print()
print(f"{'mode':8} {'reads/s':>16} {'read p50 ms':>16} {'read p99 ms':>22} {'server p99 ≤ ms':>16} {'entries/post':>14} {'celeb pushed to':>16} {'visible s (server)':>19} {'seen s (client)':>16} {'miss/dup/extra':>15}")
for m, rs in by.items():
    for r in rs:
        r["per_post"] = r["timeline_entries"] / r["posts"] if r["posts"] else 0
    f = lambda k, p=1: "%.*f (%.*f–%.*f)" % (p, med(rs, k)[0], p, med(rs, k)[1], p, med(rs, k)[2])
    bad = "%d/%d/%d" % (sum(r["missing"] for r in rs), sum(r["duplicated"] for r in rs), sum(r["extra"] for r in rs))
    print(f"{m:8} {f('reads_per_s', 0):>16} {f('read_p50_ms', 2):>16} {f('read_p99_ms', 2):>22} {med(rs, 'server_p99_ms_at_most')[0]:>16.1f} {med(rs, 'per_post')[0]:>14.1f} {int(med(rs, 'celebrity_targets')[0]):>16} {f('celebrity_visible_s', 3):>19} {f('celebrity_seen_s', 2):>16} {bad:>15}")
print()
if "push" in by and "hybrid" in by:
    ratio = statistics.median(total(r) for r in by["hybrid"]) / max(statistics.median(total(r) for r in by["push"]), 1)
    seen = max(r["celebrity_seen_s"] for r in by["hybrid"])
    print(f"hybrid writes {ratio:.3f} of push's timeline entries (goal ≤ 0.1: {'met' if ratio <= 0.1 else 'NOT met'}); "
          f"its celebrity posts were on every sampled follower's first page within {seen:.2f} s (goal ≤ 5 s: {'met' if 0 <= seen <= 5 else 'NOT met'})")
for m, rs in by.items():
    p99 = statistics.median(r["read_p99_ms"] for r in rs)
    got = statistics.median(r["reads_per_s"] for r in rs)
    print(f"{m}: read p99 {p99:.2f} ms at {got:.0f} reads/s (goal ≤ 10 ms at {rate:.0f}/s: {'met' if p99 <= 10 and got >= 0.98 * rate else 'NOT met'})")
bad = sum(r["missing"] + r["duplicated"] + r["extra"] for rs in by.values() for r in rs)
print(f"missing, duplicated or extra items over every run: {bad} (goal 0: {'met' if bad == 0 else 'NOT met'})")
PY
