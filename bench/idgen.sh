#!/usr/bin/env bash
# Snowflake generation speed: scalelab's generator (mutex, and the measured
# CAS alternative) next to bwmarrin/snowflake and sony/sonyflake, at 1 and
# 8 goroutines on one worker, against the layout's physical limit of
# 4,096 IDs per millisecond = 4,096,000 IDs/s.
#
#   bench/idgen.sh            # 5 runs of 1 s per variant
#   COUNT=10 bench/idgen.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=${COUNT:-5}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT

(cd "$ROOT" && go test -run '^$' -bench 'BenchmarkGenerator|BenchmarkNextN' -benchtime 1s -count "$COUNT" \
	./internal/platform/snowflake/) >"$OUT"

echo "variant                          median ids/s   (min – max)            vs 4,096,000/s limit"
awk '/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	for (i = 2; i <= NF; i++) if ($(i+1) == "ids/s") v[name] = v[name] " " $i
}
END {
	for (name in v) {
		n = split(substr(v[name], 2), a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		med = a[int((n + 1) / 2)]
		printf "%-32s %12.0f   (%.0f – %.0f)   %6.3f\n", name, med, a[1], a[n], med / 4096000
	}
}' "$OUT" | sort
