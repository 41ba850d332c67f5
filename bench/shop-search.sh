#!/usr/bin/env bash
# The shop's search index at 1M products on SQLite, PostgreSQL and MariaDB:
# runs BenchmarkSearch (internal/shop/search_bench_test.go) once per engine
# and prints time per page of 20 for each query shape.
#
#   bench/shop-search.sh                        # 1,000,000 products, 300 pages per shape
#   PRODUCTS=200000 PAGES=1000 ENGINES="sqlite postgres" bench/shop-search.sh
#
# Seeding is slow (a minute on SQLite, several on the servers), so the
# catalog is kept between runs: the SQLite file in the temp directory, and
# a database named scalelab_search_<PRODUCTS> on each server. DROP=1
# removes them at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PRODUCTS=${PRODUCTS:-1000000}
PAGES=${PAGES:-300}
ENGINES=${ENGINES:-sqlite postgres mysql}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
MYSQL=${MYSQL:-mysql://root@127.0.0.1:3306}
DB=scalelab_search_$PRODUCTS

. "$ROOT/bench/lib/need.sh"
command -v go >/dev/null || { echo "bench: go is missing (see README)"; exit 1; }

for engine in $ENGINES; do
	url=""
	case $engine in
	sqlite) ;;
	postgres)
		need psql postgresql-client
		psql "$PG/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
			psql "$PG/postgres" -qc "CREATE DATABASE $DB"
		url="$PG/$DB?sslmode=disable"
		;;
	mysql)
		need mysql mariadb-client
		host=${MYSQL#mysql://}
		user=${host%@*}
		hostport=${host#*@}
		mysql -u "$user" -h "${hostport%:*}" -P "${hostport#*:}" -e "CREATE DATABASE IF NOT EXISTS $DB"
		url="$MYSQL/$DB"
		;;
	*) echo "bench: unknown engine $engine"; exit 1 ;;
	esac
	echo "== $engine: $PRODUCTS products, $PAGES pages per query shape"
	(cd "$ROOT" && SCALELAB_SEARCH_DB=$url SCALELAB_SEARCH_PRODUCTS=$PRODUCTS \
		go test -run XXX -bench BenchmarkSearch -benchtime "${PAGES}x" -timeout 60m ./internal/shop/) |
		awk '/^BenchmarkSearch\// {sub(/-[0-9]+$/, "", $1); sub(/^BenchmarkSearch\//, "", $1);
		      printf "   %-20s %10.0f µs/page  %s hits\n", $1, $3 / 1000, $5} /seeding/ {print "  ", $0}'
	if [ "${DROP:-0}" = 1 ]; then
		case $engine in
		postgres) psql "$PG/postgres" -qc "DROP DATABASE $DB WITH (FORCE)" ;;
		mysql) mysql -u "$user" -h "${hostport%:*}" -P "${hostport#*:}" -e "DROP DATABASE $DB" ;;
		sqlite) rm -f "${TMPDIR:-/tmp}/scalelab-search-$PRODUCTS.db"* ;;
		esac
	fi
done
