#!/usr/bin/env bash
# coupon_lock's benchmark: the extension against what users write today, side by
# side in one run on one throwaway server (docs/performance.md explains it all).
#
#   bench/run.sh            the full run (about 15 minutes on 2 cores)
#   bench/run.sh --quick    a few minutes, to check the harness
#
# It installs what is missing, builds and installs the extension, starts a
# PostgreSQL tuned for benchmarking under tmp/bench and a Redis, loads the
# extension and the baselines (bench/baselines.sql), runs the pgbench workloads
# with the contenders of each cell taking turns, writes bench/results/report.md
# and bench/results/throughput.png, and stops what it started.
#
# Ports: CL_BENCH_PGPORT (54891), CL_BENCH_REDIS_PORT (6499); the router
# workload's two clusters CL_BENCH_ROUTER_PGPORT (55098) and
# CL_BENCH_SHARDS_PGPORT_B (55077).  The matrix is set
# by the CL_BENCH_* variables below; each run prints what it ran.
set -u
. "$(dirname "$0")/../test/lib.sh"
cd "$CL_ROOT"

MODE=full
case "${1:-}" in
    --quick) MODE=quick ;;
    "") ;;
    *) echo "usage: bench/run.sh [--quick]" >&2; exit 2 ;;
esac

PGPORT=${CL_BENCH_PGPORT:-54891}
REDIS_PORT=${CL_BENCH_REDIS_PORT:-6499}
ROUTER_PGPORT=${CL_BENCH_ROUTER_PGPORT:-55098}   # the router workload's first cluster
export PGHOST=127.0.0.1 PGPORT PGUSER=postgres PGDATABASE=postgres

# The matrix.  A cell is clients:synchronous_commit (claims: clients:quantity).
# Every contender of a cell runs REPEATS times, in the order A B C, then C B A,
# so that a machine slowly getting faster or slower favours nobody.
if [ "$MODE" = quick ]; then
    : "${CL_BENCH_SECONDS:=3}" "${CL_BENCH_REPEATS:=1}"
    : "${CL_BENCH_CYCLE_CELLS:=8:off}"
    : "${CL_BENCH_CLAIM_CELLS:=32:200000:off}" "${CL_BENCH_CLAIM_SECONDS:=12}"
    : "${CL_BENCH_CLAIM_WEAK_CELLS:=32:200000:off}"
    : "${CL_BENCH_ADVISORY_CELLS:=8:on}"
    : "${CL_BENCH_REDIS_SECONDS:=3}"
    : "${CL_BENCH_BIG_QUANTITY:=1000000}" "${CL_BENCH_BIG_CELLS:=8:off}"
    : "${CL_BENCH_BATCHES:=2000}"
else
    : "${CL_BENCH_SECONDS:=6}" "${CL_BENCH_REPEATS:=2}"
    : "${CL_BENCH_CYCLE_CELLS:=8:on 32:on 8:off 32:off}"
    # clients:quantity:synchronous_commit; the weak SKIP LOCKED claim (ORDER BY)
    # collapses as the batch drains, so it runs in one cell only, to show it
    : "${CL_BENCH_CLAIM_CELLS:=32:1000000:on 8:1000000:on 32:1000000:off 8:1000000:off}"
    : "${CL_BENCH_CLAIM_SECONDS:=24}"
    : "${CL_BENCH_CLAIM_WEAK_CELLS:=32:1000000:on}"
    : "${CL_BENCH_ADVISORY_CELLS:=8:on 32:on}"
    : "${CL_BENCH_REDIS_SECONDS:=6}"
    : "${CL_BENCH_BIG_QUANTITY:=10000000}" "${CL_BENCH_BIG_CELLS:=8:off 32:off}"
    : "${CL_BENCH_BATCHES:=100000}"
fi
: "${CL_BENCH_WORKLOADS:=cycle claim batches advisory redis redis_modes big router}"
: "${CL_BENCH_ROUTER_CLIENTS:=8}" "${CL_BENCH_ROUTER_SECONDS:=$CL_BENCH_SECONDS}"
: "${CL_BENCH_QUANTITY:=100000}"        # coupons of the cycle's batches

BENCH=$CL_ROOT/bench
OUT=$BENCH/results
RAW=$OUT/raw
PGBENCH=$CL_PGBIN/pgbench
PYTHON=/usr/bin/python3                 # Debian's, where python3-redis lives
RUNS=$RAW/runs.tsv

psql_q() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
have_function() { [ "$(psql_q -c "SELECT to_regprocedure('$1') IS NOT NULL")" = t ]; }
note() { printf '%s\n' "$*" | tee -a "$RAW/notes.txt" >&2; }

# ---- servers ----

start_servers() {
    # shellcheck disable=SC2086
    cl_install_packages $CL_BENCH_PACKAGES
    cl_build_install yes
    cl_pg_stop bench
    rm -rf "$CL_ROOT/tmp/bench"
    mkdir -p "$CL_ROOT/tmp/bench"
    cl_pg_start bench "$PGPORT"
    # Tuned for a benchmark, not for safety of the data (it is thrown away),
    # but fsync stays on so that synchronous_commit = on costs what it costs.
    psql_q <<'SQL'
ALTER SYSTEM SET shared_buffers = '3GB';
ALTER SYSTEM SET effective_cache_size = '8GB';
ALTER SYSTEM SET max_wal_size = '32GB';
ALTER SYSTEM SET min_wal_size = '2GB';
ALTER SYSTEM SET checkpoint_timeout = '1h';
ALTER SYSTEM SET wal_buffers = '64MB';
ALTER SYSTEM SET maintenance_work_mem = '1GB';
ALTER SYSTEM SET random_page_cost = 1.1;
ALTER SYSTEM SET jit = off;
ALTER SYSTEM SET log_checkpoints = on;
ALTER SYSTEM SET log_autovacuum_min_duration = 0;
SQL
    cl_pg_stop bench
    cl_pg_start bench "$PGPORT"
    cl_redis_start bench "$REDIS_PORT"
}

stop_servers() {
    cl_pg_stop bench
    cl_redis_stop bench
}

# ---- one pgbench run ----

# run_pgbench WORKLOAD CONTENDER CLIENTS SYNC SECONDS SCRIPT [pgbench options...]
# Appends a line to runs.tsv; the run's folder keeps pgbench's output and its
# per-transaction log (the report reads latencies from it).
RUN_NO=0
run_pgbench() {
    local workload=$1 contender=$2 clients=$3 sync=$4 seconds=$5 script=$6
    shift 6
    local threads=$((clients < 2 ? 1 : 2)) dir tps failed
    RUN_NO=$((RUN_NO + 1))
    dir=$RAW/$(printf '%03d' "$RUN_NO")-$workload-$contender-c$clients-$sync
    mkdir -p "$dir"
    psql_q -c CHECKPOINT
    psql_q -c "SELECT pg_current_wal_lsn()" >"$dir/wal_start.txt"
    PGOPTIONS="-c synchronous_commit=$sync ${CL_BENCH_PGOPTIONS:-}" \
        "$PGBENCH" -n -M prepared -c "$clients" -j "$threads" -T "$seconds" \
        -l --log-prefix="$dir/tx" "$@" -f "$BENCH/$script" >"$dir/pgbench.out" 2>&1 &
    sample_waits "$!" >"$dir/waits.txt"
    wait "$!"
    psql_q -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$(cat "$dir/wal_start.txt")')" >"$dir/wal_bytes.txt"
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$dir/pgbench.out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$dir/pgbench.out")
    if [ -z "$tps" ] || grep -q 'aborted in command' "$dir/pgbench.out"; then
        note "run $(basename "$dir") failed: $(grep -m 3 -E 'error|FATAL|abort' "$dir/pgbench.out" | tr '\n' ' ')"
        tps=0
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$contender" "$clients" "$sync" \
        "$seconds" "$tps" "$(basename "$dir")" >>"$RUNS"
    printf '  %-9s %-12s clients=%-3s sync=%-3s %6.0f tx/s  (failed: %s)\n' \
        "$workload" "$contender" "$clients" "$sync" "$tps" "${failed:-?}" >&2
    LAST_DIR=$dir
}

# sample_waits PID: while process PID (pgbench) runs, what its backends wait
# for, five times a second from one extra connection (so the sampling costs
# about the same for every contender): one line per active backend and
# sample, wait_event_type:wait_event, "CPU:-" when it waits for nothing.
# Waits are how a claim's wall-clock ratio can fall far below its ratio by
# instructions (bench/profile.sh): docs/performance.md reads them.
sample_waits() {
    local pid=$1
    sleep 1                     # the clients connect
    while kill -0 "$pid" 2>/dev/null; do
        echo "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-') FROM pg_stat_activity
               WHERE application_name = 'pgbench' AND state = 'active' AND pid <> pg_backend_pid();"
        sleep 0.2
    done | psql_q 2>/dev/null | grep -v '^$'
}

# turns REPEAT CONTENDER...: the contenders in the order this repeat runs them.
turns() {
    local repeat=$1
    shift
    if [ $((repeat % 2)) = 1 ]; then echo "$@"; else echo "$@" | tr ' ' '\n' | tac | tr '\n' ' '; fi
}

# ---- data ----

# issued_batch SCHEMA QUANTITY: a batch whose coupons are all issued (owner
# u<coupon_id>), vacuumed; prints "batch_id first_coupon_id".  coupon_lock's
# batch is made by create_batch and then issued with one UPDATE; for a large
# one (CL_BENCH_BIG_QUANTITY) the coupons are written issued at once
# (bench_plpgsql.issued_batch), which halves the setup and changes nothing the
# cycle measures.
issued_batch() {
    local schema=$1 quantity=$2 b
    if [ "$schema" = coupon_lock ] && [ "$quantity" -ge "$CL_BENCH_BIG_QUANTITY" ]; then
        b=$(psql_q -c "SELECT bench_plpgsql.issued_batch('bench $quantity', $quantity)")
    elif [ "$schema" = coupon_lock ]; then
        b=$(psql_q -c "SELECT coupon_lock.create_batch('bench $quantity', $quantity, 1)")
        psql_q -c "SELECT bench_plpgsql.issue_all('$schema', $b)" >/dev/null
    else
        b=$(psql_q -c "SELECT bench_plpgsql.create_batch('$schema', 'bench $quantity', $quantity, 1)")
        psql_q -c "SELECT bench_plpgsql.issue_all('$schema', $b)" >/dev/null
    fi
    psql_q -c "VACUUM ANALYZE $schema.coupon" -c "VACUUM ANALYZE $schema.batch"
    echo "$b $(psql_q -c "SELECT first_coupon_id FROM $schema.batch WHERE batch_id = $b")"
}

# table_stats: one line per contender's coupon table: updates, HOT updates,
# heap and index size (bytes).
table_stats() {
    psql_q -F $'\t' -c "SELECT s.schemaname, s.n_tup_upd, s.n_tup_hot_upd,
                                pg_table_size(s.relid), pg_indexes_size(s.relid)
                           FROM pg_stat_user_tables s
                          WHERE s.relname = 'coupon' AND s.schemaname IN ('coupon_lock', 'bench_plpgsql', 'bench_sql')
                          ORDER BY 1"
}

# ---- workloads ----

declare -A FIRST
cycle_setup() {
    local s b f
    [ -n "${FIRST[ext]:-}" ] && return 0
    for s in coupon_lock:ext bench_plpgsql:plpgsql bench_sql:sql; do
        read -r b f < <(issued_batch "${s%%:*}" "$CL_BENCH_QUANTITY")
        FIRST[${s#*:}]=$f
    done
}

workload_cycle() {
    local cell clients sync r c
    note "cycle: freeze + unfreeze of random issued coupons of $CL_BENCH_QUANTITY;" \
        "cells (clients:synchronous_commit) $CL_BENCH_CYCLE_CELLS; ${CL_BENCH_SECONDS}s x $CL_BENCH_REPEATS per contender"
    cycle_setup
    sleep 1; table_stats >"$RAW/hot_before.tsv"   # counters reach the stats after up to a second
    for cell in $CL_BENCH_CYCLE_CELLS; do
        clients=${cell%%:*} sync=${cell#*:}
        for r in $(seq "$CL_BENCH_REPEATS"); do
            for c in $(turns "$r" ext plpgsql sql); do
                run_pgbench cycle "$c" "$clients" "$sync" "$CL_BENCH_SECONDS" "cycle_$c.sql" \
                    -D first="${FIRST[$c]}" -D n="$CL_BENCH_QUANTITY" -D nclients="$clients"
            done
        done
    done
    sleep 1; table_stats >"$RAW/hot_after.tsv"
}

# One flash sale: a fresh batch, clients claiming for CLAIM_SECONDS, then the
# claims per second (from the coupons' updated_at, which is the claiming
# transaction's start) and the oversell check.  Contenders: ext (coupon_claim),
# skip (PL/pgSQL, SKIP LOCKED without ORDER BY), plpgsql (the same with ORDER
# BY coupon_id), floor (one sequence-addressed UPDATE, no ledger, no limit).
claim_run() {
    local contender=$1 clients=$2 quantity=$3 sync=$4 schema=bench_plpgsql b f
    case $contender in
        ext)
            schema=coupon_lock
            b=$(psql_q -c "SELECT coupon_lock.create_batch('flash', $quantity, 1)") ;;
        floor)
            schema=bench_sql
            b=$(psql_q -c "SELECT bench_plpgsql.create_batch('bench_sql', 'flash', $quantity, 1)")
            psql_q -c "DROP SEQUENCE IF EXISTS bench_sql.claim_seq" -c "CREATE SEQUENCE bench_sql.claim_seq" ;;
        *)
            b=$(psql_q -c "SELECT bench_plpgsql.create_batch('bench_plpgsql', 'flash', $quantity, 1)") ;;
    esac
    f=$(psql_q -c "SELECT first_coupon_id FROM $schema.batch WHERE batch_id = $b")
    psql_q -c "VACUUM ANALYZE $schema.coupon"
    run_pgbench "claim-$quantity" "$contender" "$clients" "$sync" \
        "$CL_BENCH_CLAIM_SECONDS" "claim_$contender.sql" -D batch="$b" -D first="$f"
    psql_q -F $'\t' -c "SELECT extract(epoch FROM date_trunc('second', updated_at))::bigint, count(*)
                          FROM $schema.coupon WHERE batch_id = $b AND state <> 'available'
                         GROUP BY 1 ORDER BY 1" >"$LAST_DIR/per_second.tsv"
    psql_q -F $'\t' -c "SELECT * FROM bench_plpgsql.claim_check('$schema', $b)" >"$LAST_DIR/check.tsv"
    read -r q issued events twice over <"$LAST_DIR/check.tsv"
    # the floor writes no ledger and checks no limit: only "no coupon beyond the quantity" applies
    [ "$contender" = floor ] && events=$issued over=0
    if [ "$issued" -gt "$q" ] || [ "$issued" != "$events" ] || [ "$twice" != 0 ] || [ "$over" != 0 ]; then
        note "OVERSELL in $LAST_DIR: quantity $q, claimed $issued, claim events $events, claimed twice $twice, owners over limit $over"
    fi
}

workload_claim() {
    local cell clients quantity sync c contenders
    note "claim: flash sale on a fresh batch per run; cells (clients:quantity:synchronous_commit) $CL_BENCH_CLAIM_CELLS;" \
        "${CL_BENCH_CLAIM_SECONDS}s per contender, 1 repeat; the weak SKIP LOCKED claim (ORDER BY) only in $CL_BENCH_CLAIM_WEAK_CELLS"
    for cell in $CL_BENCH_CLAIM_CELLS; do
        IFS=: read -r clients quantity sync <<<"$cell"
        contenders="ext skip floor"
        case " $CL_BENCH_CLAIM_WEAK_CELLS " in *" $cell "*) contenders="$contenders plpgsql" ;; esac
        # shellcheck disable=SC2086
        for c in $(turns 1 $contenders); do
            claim_run "$c" "$clients" "$quantity" "$sync"
        done
    done
}

# 100,000 batches: create_batch's time with few and with many batches, a
# claim's cost on a big batch with few and with many batches, the claim
# sequences that exist, and pg_dump's time and size.  Writes raw/batches.tsv.
workload_batches() {
    local n=$CL_BENCH_BATCHES big fb t0 t1 out=$RAW/batches.tsv
    note "batches: create_batch of 10-coupon batches and claims on a 1M batch, with 1 and with $n batches; pg_dump"
    psql_q -c "CREATE DATABASE bench_batches"
    psql_q -d bench_batches -c "CREATE EXTENSION coupon_lock"
    big=$(psql_q -d bench_batches -c "SELECT coupon_lock.create_batch('big', 1000000, 1)")
    batches_round() {   # LABEL
        PGDATABASE=bench_batches run_pgbench "batches-$1" create_batch 1 on "$CL_BENCH_SECONDS" create_batch.sql
        PGDATABASE=bench_batches run_pgbench "batches-$1" claim 8 on "$CL_BENCH_SECONDS" claim_ext.sql -D batch="$big"
    }
    batches_round few
    t0=$(date +%s.%N)
    # in transactions of 1,000: a claim sequence holds a lock-table entry until commit
    for _ in $(seq $((n / 1000))); do
        psql_q -d bench_batches -c "SELECT count(coupon_lock.create_batch('small', 10, 1)) FROM generate_series(1, 1000)" >/dev/null
    done
    t1=$(date +%s.%N)
    psql_q -d bench_batches -c "VACUUM ANALYZE"
    batches_round many
    {
        printf 'batches\t%s\n' "$(psql_q -d bench_batches -c "SELECT count(*) FROM coupon_lock.batch")"
        printf 'bulk_create_seconds\t%s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
        printf 'claim_sequences\t%s\n' "$(psql_q -d bench_batches -c "SELECT count(*) FROM pg_class WHERE relname LIKE 'claim\_seq\_%'")"
        t0=$(date +%s.%N)
        "$CL_PGBIN/pg_dump" -Fc -d bench_batches -f "$RAW/batches.dump"
        t1=$(date +%s.%N)
        printf 'pg_dump_seconds\t%s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
        printf 'pg_dump_bytes\t%s\n' "$(stat -c %s "$RAW/batches.dump")"
        printf 'database_bytes\t%s\n' "$(psql_q -c "SELECT pg_database_size('bench_batches')")"
    } >"$out"
    rm -f "$RAW/batches.dump"
    psql_q -c "DROP DATABASE bench_batches"
}

workload_advisory() {
    local cell clients sync r c
    if ! have_function 'coupon_lock.advisory_lock(text,interval)'; then
        note "advisory: skipped, coupon_lock.advisory_lock(text, interval) does not exist in this build"
        return 0
    fi
    note "advisory: lock + unlock of a text key; cells $CL_BENCH_ADVISORY_CELLS; ${CL_BENCH_SECONDS}s x $CL_BENCH_REPEATS"
    for cell in $CL_BENCH_ADVISORY_CELLS; do
        clients=${cell%%:*} sync=${cell#*:}
        for r in $(seq "$CL_BENCH_REPEATS"); do
            for c in $(turns "$r" ext core); do
                run_pgbench advisory "$c" "$clients" "$sync" "$CL_BENCH_SECONDS" "advisory_$c.sql"
            done
        done
    done
}

workload_redis() {
    local r c dir
    if ! have_function 'coupon_lock.redis_lock(text,interval,interval)'; then
        note "redis: skipped, coupon_lock.redis_lock(text, interval, interval) does not exist in this build"
        return 0
    fi
    note "redis: one client's lock + unlock, SQL vs redis-py Lock, Redis on port $REDIS_PORT; ${CL_BENCH_REDIS_SECONDS}s x $CL_BENCH_REPEATS"
    for r in $(seq "$CL_BENCH_REPEATS"); do
        for c in $(turns "$r" ext redis-py); do
            if [ "$c" = ext ]; then
                CL_BENCH_PGOPTIONS="-c coupon_lock.redis_host=127.0.0.1 -c coupon_lock.redis_port=$REDIS_PORT" \
                    run_pgbench redis ext 1 on "$CL_BENCH_REDIS_SECONDS" redis_ext.sql
            else
                RUN_NO=$((RUN_NO + 1))
                dir=$RAW/$(printf '%03d' "$RUN_NO")-redis-redis-py-c1-on
                mkdir -p "$dir"
                tps=$("$PYTHON" "$BENCH/redis_py.py" 127.0.0.1 "$REDIS_PORT" "$CL_BENCH_REDIS_SECONDS" "$dir/tx.log") ||
                    { note "redis-py run failed"; tps=0; }
                printf 'redis\tredis-py\t1\ton\t%s\t%s\t%s\n' "$CL_BENCH_REDIS_SECONDS" "$tps" "$(basename "$dir")" >>"$RUNS"
                printf '  %-9s %-12s clients=%-3s          %6.0f tx/s\n' redis redis-py 1 "$tps" >&2
            fi
        done
    done
}

# Redis lock modes side by side (issue 12 item 5): bench/redis_modes.sh, on
# servers of its own (single 7065, Sentinel 7066-7067 + 27055-27057, Redlock
# 7075-7079 by default); its table goes to raw/redis_modes.md for report.py.
workload_redis_modes() {
    if ! have_function 'coupon_lock.redis_lock_validity(text,text)'; then
        note "redis_modes: skipped, this build has no Redlock (coupon_lock.redis_lock_validity does not exist)"
        return 0
    fi
    note "redis_modes: one client's lock + unlock through SQL: single server, Sentinel, Redlock over 3 and 5;" \
        "${CL_BENCH_REDIS_SECONDS}s x $CL_BENCH_REPEATS"
    CL_BENCH_MODES_REPEATS=$CL_BENCH_REPEATS bash "$BENCH/redis_modes.sh" "$CL_BENCH_REDIS_SECONDS" "$RAW/redis_modes.md" \
        >/dev/null || note "redis_modes: bench/redis_modes.sh failed"
}

workload_big() {
    local b f cell clients sync r c
    note "big: the extension's cycle on $CL_BENCH_BIG_QUANTITY coupons vs on $CL_BENCH_QUANTITY;" \
        "cells $CL_BENCH_BIG_CELLS; ${CL_BENCH_SECONDS}s x $CL_BENCH_REPEATS"
    cycle_setup
    note "big: writing $CL_BENCH_BIG_QUANTITY issued coupons (bench_plpgsql.issued_batch), then VACUUM"
    read -r b f < <(issued_batch coupon_lock "$CL_BENCH_BIG_QUANTITY")
    FIRST[big]=$f
    for cell in $CL_BENCH_BIG_CELLS; do
        clients=${cell%%:*} sync=${cell#*:}
        for r in $(seq "$CL_BENCH_REPEATS"); do
            for c in $(turns "$r" small big); do
                local n=$CL_BENCH_QUANTITY first=${FIRST[ext]}
                [ "$c" = big ] && n=$CL_BENCH_BIG_QUANTITY first=${FIRST[big]}
                run_pgbench big "ext-$c" "$clients" "$sync" "$CL_BENCH_SECONDS" cycle_ext.sql \
                    -D first="$first" -D n="$n" -D nclients="$clients"
            done
        done
    done
}

# The router's cost per call (issue 14 item 5): claims and the cycle through
# coupon_lock_router against the same calls on one shard directly.  It runs
# bench/shards.sh (the shards layer's setup: a router and four shards over two
# clusters of their own, on CL_BENCH_ROUTER_PGPORT and CL_BENCH_SHARDS_PGPORT_B)
# with this run's seconds, and writes raw/router.tsv for report.py.
workload_router() {
    if [ "$(psql_q -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'coupon_lock_router'")" = 0 ]; then
        note "router: skipped, the coupon_lock_router extension is not installed in this build"
        return 0
    fi
    note "router: coupon_claim and freeze + unfreeze through coupon_lock_router vs on a shard directly" \
        "(bench/shards.sh), ${CL_BENCH_ROUTER_CLIENTS} clients, sync on, ${CL_BENCH_ROUTER_SECONDS}s per workload and side"
    CL_BENCH_BUILT=yes CL_BENCH_PGPORT=$ROUTER_PGPORT CL_BENCH_CLIENTS=$CL_BENCH_ROUTER_CLIENTS \
        CL_BENCH_SECONDS=$CL_BENCH_ROUTER_SECONDS CL_BENCH_QUANTITY=$CL_BENCH_QUANTITY \
        CL_BENCH_SHARDS_OUT=$RAW/router.md CL_BENCH_SHARDS_TSV=$RAW/router.tsv \
        bash "$BENCH/shards.sh" >"$RAW/router.log" 2>&1 ||
        note "router: bench/shards.sh failed: $(tail -n 3 "$RAW/router.log" | tr '\n' ' ')"
}

# ---- main ----

start=$(date +%s)
trap stop_servers EXIT
mkdir -p "$OUT"
rm -rf "$RAW"
mkdir -p "$RAW"
chmod -R a+rwX "$OUT"
printf 'workload\tcontender\tclients\tsync\tseconds\ttps\trun\n' >"$RUNS"

start_servers
psql_q -c "CREATE EXTENSION coupon_lock" -f "$BENCH/baselines.sql" 2>&1 | grep -v NOTICE || true
"$CL_PGBIN/postgres" --version >"$RAW/server.txt"
{
    echo "mode: $MODE"
    echo "machine: $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GB RAM"
    echo "server: $(cat "$RAW/server.txt")"
    echo "settings: $(psql_q -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name)
                              FROM pg_settings WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout',
                                   'wal_buffers', 'fsync', 'autovacuum', 'max_connections', 'jit', 'full_page_writes')")"
    echo "pgbench: -M prepared, -j 2 (1 for one client), a fresh CHECKPOINT before each run"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RAW/conditions.txt"
cat "$RAW/conditions.txt" >&2

for w in $CL_BENCH_WORKLOADS; do
    if declare -F "workload_$w" >/dev/null; then
        "workload_$w"
    else
        note "unknown workload: $w"
    fi
done

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW/conditions.txt"
echo "elapsed: $(( $(date +%s) - start )) s" >>"$RAW/conditions.txt"
"$PYTHON" "$BENCH/report.py" "$RAW" "$OUT" || cl_die "report failed"
cl_log "report: $OUT/report.md, chart: $OUT/throughput.png ($(( $(date +%s) - start )) s)"
