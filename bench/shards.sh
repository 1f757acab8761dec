#!/usr/bin/env bash
# The router's cost per call: claims and the freeze+unfreeze cycle through
# coupon_lock_router against the same work on one shard directly, in one run
# on this machine (docs/scaling.md reads the figures).
#
#   bench/shards.sh     writes bench/results/shards.md (about 2 minutes)
#
# bench/run.sh's `router` workload runs this script for its report: it sets
# CL_BENCH_SHARDS_OUT (where the Markdown goes instead), CL_BENCH_SHARDS_TSV
# (the same figures as tab-separated lines for bench/report.py) and
# CL_BENCH_BUILT=yes (the extension is built and installed already).
#
# The setup is the shards layer's (test/shards/lib.sh): a router and four
# shards over two clusters, here on CL_BENCH_PGPORT (default 55074) and
# CL_BENCH_SHARDS_PGPORT_B (default 55077), eight partitions.  Both sides run
# CL_BENCH_CLIENTS (8) pgbench clients for CL_BENCH_SECONDS (15) per workload,
# on the same two clusters: "direct" connects to cl_shard1, "router" to
# cl_router, which sends each call on to whichever shard owns it.
set -u
. "$(dirname "$0")/../test/lib.sh"
cd "$CL_ROOT"
CL_SHARDS_PGPORT_A=${CL_BENCH_PGPORT:-55074}
CL_SHARDS_PGPORT_B=${CL_BENCH_SHARDS_PGPORT_B:-55077}
SH_NAME=bench_shards
SH_STATEMENT_TIMEOUT=10min   # minting a large batch's shares takes longer than the layer's 20s
SH_QUERY_TIMEOUT=600         # and reading its coupons through the view longer than the layer's query_timeout 10s
. "$CL_ROOT/test/shards/lib.sh"
CLIENTS=${CL_BENCH_CLIENTS:-8}
SECS=${CL_BENCH_SECONDS:-15}
QUANTITY=${CL_BENCH_QUANTITY:-200000}   # coupons of each side's batch
OUT=${CL_BENCH_SHARDS_OUT:-$CL_ROOT/bench/results/shards.md}
TSV=${CL_BENCH_SHARDS_TSV:-}
TMPD=$CL_ROOT/tmp/bench_shards
PGBENCH=$CL_PGBIN/pgbench

if [ "${CL_BENCH_BUILT:-}" != yes ]; then
    cl_install_packages
    cl_build_install yes
fi
mkdir -p "$TMPD"
sh_start
trap 'sh_stop' EXIT
sh_fresh || cl_die "router setup failed"
direct() { sh_psql A cl_shard1 "$@"; }


# the same batch size on both sides; per-user limit high: owners repeat
direct_b=$(direct -c "SELECT coupon_lock.create_batch('bench direct', $QUANTITY, 1000000)")
router_b=$(sh_router -c "SELECT coupon_lock.create_batch('bench router', $QUANTITY, 1000000)")

cat >"$TMPD/claim.pgb" <<'PGB'
\set o random(1, 100000)
SELECT coupon_lock.coupon_claim(:b, 'owner-' || :o);
PGB
# each client cycles its own 500 coupons (no two clients on one coupon)
cat >"$TMPD/cycle.pgb" <<'PGB'
\set i :client_id * 500 + random(1, 500)
\set r random(1, 1000000000)
SELECT coupon_lock.coupon_freeze(c.coupon_id, c.owner_id, 'order-' || :r) FROM public.cycle_coupon c WHERE c.i = :i;
SELECT coupon_lock.coupon_unfreeze(c.coupon_id, 'order-' || :r) FROM public.cycle_coupon c WHERE c.i = :i;
PGB

# run NAME PORT DB BATCH SCRIPT -> "tps|latency_ms"
run() {
    "$PGBENCH" -n -h 127.0.0.1 -p "$2" -U postgres -c "$CLIENTS" -j 2 -T "$SECS" -D b="$4" -f "$5" "$3" \
        >"$TMPD/$1.log" 2>&1 || { tail -n 5 "$TMPD/$1.log" >&2; echo "0|0"; return; }
    echo "$(grep -oE 'tps = [0-9.]+' "$TMPD/$1.log" | head -n 1 | cut -d' ' -f3)|$(grep -oE 'latency average = [0-9.]+' "$TMPD/$1.log" | cut -d' ' -f4)"
}

cl_log "claims, $CLIENTS clients, ${SECS}s each"
claim_direct=$(run claim_direct "$SH_PORT_A" cl_shard1 "$direct_b" "$TMPD/claim.pgb")
claim_router=$(run claim_router "$SH_PORT_A" cl_router "$router_b" "$TMPD/claim.pgb")

# coupons to cycle: claimed ones, numbered per client; a short run may not
# have claimed enough of them, the rest are claimed here (one call each)
n=$((CLIENTS * 500 + 500))
top_up() {   # PSQL-FUNCTION BATCH
    "$1" -c "SELECT count(coupon_lock.coupon_claim($2, 'owner-top-' || g))
               FROM generate_series(1, greatest(0, $n - (SELECT count(*) FROM coupon_lock.coupon
                                                           WHERE batch_id = $2 AND state = 'issued'))) g" >/dev/null
}
top_up direct "$direct_b"
top_up sh_router "$router_b"
direct -c "CREATE TABLE public.cycle_coupon AS SELECT row_number() OVER () AS i, coupon_id, owner_id
             FROM coupon_lock.coupon WHERE batch_id = $direct_b AND state = 'issued' LIMIT $n" \
       -c "CREATE UNIQUE INDEX ON public.cycle_coupon (i)"
sh_router -c "CREATE TABLE public.cycle_coupon AS SELECT row_number() OVER () AS i, coupon_id, owner_id
                FROM coupon_lock.coupon WHERE batch_id = $router_b AND state = 'issued' LIMIT $n" \
          -c "CREATE UNIQUE INDEX ON public.cycle_coupon (i)"
cl_log "freeze+unfreeze cycles, $CLIENTS clients, ${SECS}s each"
cycle_direct=$(run cycle_direct "$SH_PORT_A" cl_shard1 0 "$TMPD/cycle.pgb")
cycle_router=$(run cycle_router "$SH_PORT_A" cl_router 0 "$TMPD/cycle.pgb")

ratio() { echo "scale=2; $1 / $2" | bc 2>/dev/null || echo "?"; }
row() {
    local name=$1 d=$2 r=$3
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "${d%|*}" "${r%|*}" "$(ratio "${r%|*}" "${d%|*}")" \
        "${d#*|}" "${r#*|}"
}
{
    echo "# Router against a shard directly ($(date -u '+%Y-%m-%d %H:%M UTC'), one run)"
    echo
    echo "$CLIENTS pgbench clients, ${SECS}s per workload, two clusters and five databases on this machine's"
    echo "$(nproc) cores; \"direct\" is cl_shard1 alone, \"router\" is cl_router over the four shards"
    echo "(bench/shards.sh; docs/scaling.md explains the figures)."
    echo
    echo "| workload | direct tps | router tps | router/direct | direct latency ms | router latency ms |"
    echo "|---|---|---|---|---|---|"
    row "coupon_claim" "$claim_direct" "$claim_router"
    row "freeze + unfreeze (two calls)" "$cycle_direct" "$cycle_router"
} >"$OUT"
cat "$OUT"
if [ -n "$TSV" ]; then
    tsv_row() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "${2%|*}" "${3%|*}" "${2#*|}" "${3#*|}"; }
    {
        printf 'workload\tdirect_tps\trouter_tps\tdirect_ms\trouter_ms\n'
        tsv_row claim "$claim_direct" "$claim_router"
        tsv_row cycle "$cycle_direct" "$cycle_router"
    } >"$TSV"
fi
