#!/usr/bin/env bash
# Redis lock modes side by side (issue 12 item 5): one client's
# redis_lock + redis_unlock cycles per second through SQL, with Redis found
# at one host, found through Sentinel, and Redlock over 3 and over 5
# independent masters, in one run (the order turns each repeat, so that
# machine drift favours none).
#
#   bench/redis_modes.sh [SECONDS] [OUT]   default 10 s per run, 2 runs per mode;
#                                          the table to OUT (bench/results/redis_modes.md)
#
# Needs a running PostgreSQL with coupon_lock installed in $PGDATABASE
# (PGHOST/PGPORT/PGUSER as for psql; bench/run.sh's cluster does).  Starts
# its own servers under tmp/bench_redis_modes: a Redis on
# CL_BENCH_MODES_REDIS_PORT (default 7065) for the single-host mode, a master
# and replica on the next two ports and three Sentinels on
# CL_BENCH_MODES_SENTINEL_PORT (default 27055..27057), and five independent
# masters for Redlock on CL_BENCH_MODES_REDLOCK_PORT (default 7075..7079: the
# 3-server mode uses the first three); stops them at the end.  Prints a
# markdown table (also written to OUT).
set -u
. "$(dirname "$0")/../test/lib.sh"
. "$CL_ROOT/test/redis_ha_lib.sh"
cd "$CL_ROOT"

SECONDS_PER_RUN=${1:-10}
REPEATS=${CL_BENCH_MODES_REPEATS:-2}
SINGLE=${CL_BENCH_MODES_REDIS_PORT:-7065}
MASTER=$((SINGLE + 1))
SENTINEL=${CL_BENCH_MODES_SENTINEL_PORT:-27055}
REDLOCK=${CL_BENCH_MODES_REDLOCK_PORT:-7075}
DIR=$CL_ROOT/tmp/bench_redis_modes
OUT=${2:-$CL_ROOT/bench/results/redis_modes.md}
MODES="single sentinel redlock3 redlock5"
: "${PGHOST:=127.0.0.1}" "${PGPORT:=${CL_BENCH_PGPORT:-54891}}" "${PGUSER:=postgres}" "${PGDATABASE:=postgres}"
export PGHOST PGPORT PGUSER PGDATABASE

trap 'ha_stop "$DIR"' EXIT
ha_stop "$DIR"; rm -rf "$DIR"; mkdir -p "$DIR" "$(dirname "$OUT")"
ha_redis "$DIR" "$SINGLE" || cl_die "Redis did not start on $SINGLE"
ha_start "$DIR" "$MASTER" "$SENTINEL" || cl_die "the Sentinel setup did not come up"
rl_start "$DIR" "$REDLOCK" 5 || cl_die "the Redlock masters did not start on $REDLOCK.."

options() {   # MODE: the session settings of a mode
    case $1 in
        single) echo "-c coupon_lock.redis_host=127.0.0.1 -c coupon_lock.redis_port=$SINGLE" ;;
        sentinel) echo "-c coupon_lock.redis_host= -c coupon_lock.redis_sentinels=$(ha_sentinels "$SENTINEL")" ;;
        redlock3) echo "-c coupon_lock.redis_host= -c coupon_lock.redlock_servers=$(rl_servers "$REDLOCK" 3)" ;;
        redlock5) echo "-c coupon_lock.redis_host= -c coupon_lock.redlock_servers=$(rl_servers "$REDLOCK" 5)" ;;
    esac
}
label() {
    case $1 in
        single) echo "single server" ;;
        sentinel) echo "Sentinel-resolved master" ;;
        redlock3) echo "Redlock, 3 servers" ;;
        redlock5) echo "Redlock, 5 servers" ;;
    esac
}

declare -A sum runs
for r in $(seq "$REPEATS"); do
    modes=$MODES; [ $((r % 2)) = 0 ] && modes=$(echo "$MODES" | tr ' ' '\n' | tac | tr '\n' ' ')
    for m in $modes; do
        tps=$(PGOPTIONS="$(options "$m")" "$CL_PGBIN/pgbench" -n -M prepared -c 1 -T "$SECONDS_PER_RUN" \
                  -f "$CL_ROOT/bench/redis_ext.sql" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        echo "run $r $m: ${tps:-failed} cycles/s" >&2
        sum[$m]=$(awk -v a="${sum[$m]:-0}" -v b="${tps:-0}" 'BEGIN { print a + b }')
        runs[$m]=$(( ${runs[$m]:-0} + 1 ))
    done
done

{
    echo "| mode | lock + unlock cycles/s (1 client, mean of $REPEATS × ${SECONDS_PER_RUN} s) | / single server |"
    echo "|---|---:|---:|"
    base=$(awk -v a="${sum[single]}" -v n="${runs[single]}" 'BEGIN { print a / n }')
    for m in $MODES; do
        mean=$(awk -v a="${sum[$m]}" -v n="${runs[$m]}" 'BEGIN { print a / n }')
        printf '| %s | %.0f | %s |\n' "$(label "$m")" "$mean" \
            "$(awk -v a="$mean" -v b="$base" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "–" }')"
    done
    echo
    echo "All servers on loopback of one machine (PostgreSQL $(cut -d' ' -f3 <<<"$("$CL_PGBIN/postgres" --version)"), load average at the end $(cut -d' ' -f1-3 /proc/loadavg))."
} | tee "$OUT"
