#!/usr/bin/env bash
# Redis lock modes side by side (issue 12 item 5): one client's
# redis_lock + redis_unlock cycles per second through SQL, with Redis found
# at one host and found through Sentinel, in one run (alternating, so that
# machine drift favours neither).  Redlock is not in this build: its rows
# say so.
#
#   bench/redis_modes.sh [SECONDS]      default 10 s per run, 2 runs per mode
#
# Needs a running PostgreSQL with coupon_lock installed in $PGDATABASE
# (PGHOST/PGPORT/PGUSER as for psql; bench/run.sh's cluster does).  Starts
# its own servers under tmp/bench_redis_modes: a Redis on
# CL_BENCH_MODES_REDIS_PORT (default 7065) for the single-host mode, a master
# and replica on the next two ports and three Sentinels on
# CL_BENCH_MODES_SENTINEL_PORT (default 27055..27057); stops them at the end.
# Prints a markdown table (also written to bench/results/redis_modes.md).
set -u
. "$(dirname "$0")/../test/lib.sh"
. "$CL_ROOT/test/redis_ha_lib.sh"
cd "$CL_ROOT"

SECONDS_PER_RUN=${1:-10}
REPEATS=${CL_BENCH_MODES_REPEATS:-2}
SINGLE=${CL_BENCH_MODES_REDIS_PORT:-7065}
MASTER=$((SINGLE + 1))
SENTINEL=${CL_BENCH_MODES_SENTINEL_PORT:-27055}
DIR=$CL_ROOT/tmp/bench_redis_modes
OUT=$CL_ROOT/bench/results/redis_modes.md
: "${PGHOST:=127.0.0.1}" "${PGPORT:=${CL_BENCH_PGPORT:-54891}}" "${PGUSER:=postgres}" "${PGDATABASE:=postgres}"
export PGHOST PGPORT PGUSER PGDATABASE

trap 'ha_stop "$DIR"' EXIT
ha_stop "$DIR"; rm -rf "$DIR"; mkdir -p "$DIR" "$(dirname "$OUT")"
ha_redis "$DIR" "$SINGLE" || cl_die "Redis did not start on $SINGLE"
ha_start "$DIR" "$MASTER" "$SENTINEL" || cl_die "the Sentinel setup did not come up"

options() {   # MODE: the session settings of a mode
    case $1 in
        single) echo "-c coupon_lock.redis_host=127.0.0.1 -c coupon_lock.redis_port=$SINGLE" ;;
        sentinel) echo "-c coupon_lock.redis_host= -c coupon_lock.redis_sentinels=$(ha_sentinels "$SENTINEL")" ;;
    esac
}

declare -A sum runs
for r in $(seq "$REPEATS"); do
    modes="single sentinel"; [ $((r % 2)) = 0 ] && modes="sentinel single"
    for m in $modes; do
        tps=$(PGOPTIONS="$(options "$m")" "$CL_PGBIN/pgbench" -n -M prepared -c 1 -T "$SECONDS_PER_RUN" \
                  -f "$CL_ROOT/bench/redis_ext.sql" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "run $r $m: ${tps:-failed} cycles/s" >&2
        sum[$m]=$(awk -v a="${sum[$m]:-0}" -v b="${tps:-0}" 'BEGIN { print a + b }')
        runs[$m]=$(( ${runs[$m]:-0} + 1 ))
    done
done

{
    echo "| mode | lock + unlock cycles/s (1 client, mean of $REPEATS × ${SECONDS_PER_RUN} s) |"
    echo "|---|---|"
    for m in single sentinel; do
        printf '| %s | %.0f |\n' "$m" "$(awk -v a="${sum[$m]}" -v n="${runs[$m]}" 'BEGIN { print a / n }')"
    done
    echo "| Redlock, 3 servers | not in this build |"
    echo "| Redlock, 5 servers | not in this build |"
} | tee "$OUT"
