#!/usr/bin/env bash
# Bulk advisory locks in one transaction: the cost of n and of 4n transaction
# locks on distinct keys, and their ratio (issue 10, item 2), for
# coupon_lock.advisory_xact_lock and, as the yardstick, core
# pg_try_advisory_xact_lock on the same ids.  The lock manager itself is not
# quite linear here (its shared tables outgrow the CPU caches), so the
# figure to read is the extension's ratio against core's, and the
# extension's cost per lock above core's.  1.0's key memory walked 4096
# entries on every lock once that many were held: 25,000 locks took
# seconds instead of milliseconds.
#
#   bench/advisory_keys.sh [N]      N defaults to 25000 (so 4N = 100000)
#
# Two measures: the time of each transaction (median of REPEATS, taking turns
# with core), and the instructions it costs, counted by valgrind's callgrind
# in a single-user backend (with N and 4N locks, minus the same script with
# none): the count is what a shared, noisy machine cannot blur, and the
# extension's instruction ratio is the proof of linear work.
#
# It builds and installs the extension, starts a throwaway cluster under
# tmp/bench_keys whose shared lock table holds 4N locks
# (max_locks_per_transaction = 1024: ~125,000 slots), raises
# coupon_lock.max_held_keys for its own sessions, times each size REPEATS
# times (median), counts instructions, prints the figures and the ratios,
# and stops the cluster.  Needs valgrind (CL_BENCH_PACKAGES).
# A measurement, not a test: nothing here passes or fails on a time.
#
# Port: CL_KEYS_BENCH_PGPORT (55045).
set -u
. "$(dirname "$0")/../test/lib.sh"
cd "$CL_ROOT"

N=${1:-25000}
REPEATS=${CL_KEYS_BENCH_REPEATS:-3}
PGPORT=${CL_KEYS_BENCH_PGPORT:-55045}
export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres
psql_q() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# shellcheck disable=SC2086
cl_install_packages $CL_BENCH_PACKAGES
cl_build_install yes
cl_pg_start bench_keys "$PGPORT"
trap 'cl_pg_stop bench_keys' EXIT
psql_q -c "ALTER SYSTEM SET max_locks_per_transaction = 1024" >/dev/null
cl_pg_stop bench_keys
cl_pg_start bench_keys "$PGPORT"
psql_q -c "DROP EXTENSION IF EXISTS coupon_lock" -c "CREATE EXTENSION coupon_lock" >/dev/null 2>&1

# lock_expr WHO: one lock on key 'bulk:' || i; WHO is ext or core.
lock_expr() {
    case $1 in
        ext)  echo "coupon_lock.advisory_xact_lock('bulk:' || i)" ;;
        core) echo "pg_try_advisory_xact_lock(hashtextextended('bulk:' || i, 0))" ;;
    esac
}

# seconds WHO N: one transaction taking N transaction locks, timed by the
# server; WHO is ext or core.
seconds() {
    local lock
    lock=$(lock_expr "$1")
    psql_q <<SQL | tail -n 1
SET coupon_lock.max_held_keys = $(($2 + 1));
BEGIN;
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FILTER (WHERE $lock) = $2 AS all_taken
  FROM generate_series(1, $2) i \gset
\if :all_taken
SELECT round(extract(epoch FROM clock_timestamp() - :'t0'::timestamptz)::numeric, 4);
\else
SELECT 'not all locks were taken';
\endif
ROLLBACK;
SQL
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# ratios WHAT UNIT SCALE EXT_N EXT_4N CORE_N CORE_4N: the 4N / N ratios of
# both, and the extension's cost per lock above core's (times SCALE, in UNIT).
ratios() {
    awk -v what="$1" -v unit="$2" -v scale="$3" -v e1="$4" -v e4="$5" -v c1="$6" -v c4="$7" -v n="$N" 'BEGIN {
        printf "%s ratio %d / %d locks: extension %.2f, core %.2f (linear: 4)\n", what, 4 * n, n, e4 / e1, c4 / c1
        printf "extension above core per lock: %.2f %s at %d, %.2f %s at %d\n",
               (e1 - c1) / n * scale, unit, n, (e4 - c4) / (4 * n) * scale, unit, 4 * n
    }'
}

# Core and the extension take turns, so that drift of the machine hits both.
declare -A med
for n in "$N" $((4 * N)); do
    declare -A times=([ext]="" [core]="")
    for _ in $(seq "$REPEATS"); do
        for who in ext core; do
            t=$(seconds "$who" "$n")
            case $t in *[!0-9.]*|"") cl_die "$who: run of $n locks failed: $t" ;; esac
            times[$who]="${times[$who]} $t"
        done
    done
    for who in ext core; do
        med[$who$n]=$(tr ' ' '\n' <<<"${times[$who]}" | grep . | median)
        printf '%-4s %6d transaction locks in one transaction: median %s s of%s s\n' \
            "$who" "$n" "${med[$who$n]}" "${times[$who]}"
    done
done
ratios time us 1e6 "${med[ext$N]}" "${med[ext$((4 * N))]}" "${med[core$N]}" "${med[core$((4 * N))]}"

# instructions WHO N: callgrind's count for one single-user backend running
# the transaction of N locks.
instructions() {
    local f=$CL_ROOT/tmp/bench_keys/$1-$2
    printf '%s\n' "SET coupon_lock.max_held_keys = $(($2 + 1));" "BEGIN;" \
        "SELECT count(*) FILTER (WHERE $(lock_expr "$1")) FROM generate_series(1, $2) i;" \
        "ROLLBACK;" >"$f.sql"
    chmod a+r "$f.sql"
    cl_as_owner valgrind --tool=callgrind --callgrind-out-file="$f.callgrind" \
        "$CL_PGBIN/postgres" --single -D "$CL_ROOT/tmp/bench_keys/pg" postgres \
        <"$f.sql" >"$f.out" 2>"$f.valgrind" || cl_die "callgrind run $f failed"
    grep -q ERROR "$f.out" && cl_die "errors in $f.out"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$f.valgrind"
}

cl_pg_stop bench_keys
chown -R "$(stat -c %U "$CL_ROOT/tmp/bench_keys/pg")" "$CL_ROOT/tmp/bench_keys"
declare -A ins
for who in ext core; do
    base=$(instructions "$who" 0)
    for n in "$N" $((4 * N)); do
        ins[$who$n]=$(( $(instructions "$who" "$n") - base ))
        printf '%-4s %6d transaction locks: %d instructions (%d per lock)\n' \
            "$who" "$n" "${ins[$who$n]}" $((ins[$who$n] / n))
    done
done
ratios instruction instructions 1 "${ins[ext$N]}" "${ins[ext$((4 * N))]}" "${ins[core$N]}" "${ins[core$((4 * N))]}"
