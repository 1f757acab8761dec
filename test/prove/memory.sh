#!/usr/bin/env bash
# Memory: one backend (pgbench, one client) makes CL_MEMORY_CALLS calls
# (default 200000; `--million` or CL_MEMORY_CALLS=1000000 for the long run)
# across the API: every coupon transition, the idempotent retries, the sweeps,
# the error paths (each documented SQLSTATE), and the lock functions once
# they exist.  Every so often the backend records the total of its memory
# contexts (pg_backend_memory_contexts) and its RSS (/proc/self/status).
# Passes when the contexts grow less than CL_MEMORY_MAX_GROWTH_KB (default
# 1024) between the first sample after warm-up and the last, and so does
# its private RSS (RssAnon: malloc'ed memory such as hiredis replies, which
# the contexts do not see).  Total RSS is reported, not judged: it also
# counts the shared buffers the backend touches.
set -u
. "$(dirname "$0")/common.sh"
PV_DB=prove_memory
CALLS=${CL_MEMORY_CALLS:-200000}
[ "${1:-}" = --million ] && CALLS=1000000
MAX_GROWTH_KB=${CL_MEMORY_MAX_GROWTH_KB:-1024}

pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done memory; exit 1; }

# The script of one pgbench transaction; lock calls are added for the lock
# functions that exist.
script=$PV_TMP/memory.pgb
cat >"$script" <<'PGB'
\set n :n + 1
SELECT coupon_lock.coupon_claim(:b, 'm-' || :n) AS cid \gset
SELECT coupon_lock.coupon_freeze(:cid, 'm-' || :n, 'o-' || :n, 2) AS v \gset
SELECT coupon_lock.coupon_unfreeze(:cid, 'o-' || :n, :v) AS v \gset
SELECT coupon_lock.coupon_unfreeze(:cid, 'o-' || :n);
SELECT coupon_lock.coupon_freeze(:cid, 'm-' || :n, 'p-' || :n, NULL, '1 hour') AS v \gset
SELECT coupon_lock.coupon_freeze(:cid, 'm-' || :n, 'p-' || :n);
SELECT coupon_lock.coupon_redeem(:cid, 'p-' || :n, :v);
SELECT coupon_lock.coupon_redeem(:cid, 'p-' || :n);
SELECT coupon_lock.coupon_issue(:b2first + :n - 1, 'i-' || :n, 1);
SELECT coupon_lock.coupon_revoke(:b2first + :n - 1);
SELECT coupon_lock.release_expired_freezes(10);
SELECT coupon_lock.expire_coupons(10);
SELECT prove_mem.fails(format('SELECT coupon_lock.coupon_unfreeze(%s, %L)', :cid, 'wrong-order'));
SELECT prove_mem.fails(format('SELECT coupon_lock.coupon_revoke(%s, 1)', :cid));
SELECT prove_mem.fails(format('SELECT coupon_lock.coupon_revoke(%s)', :cid));
SELECT prove_mem.fails('SELECT coupon_lock.coupon_issue(-1, ''x'')');
SELECT prove_mem.fails('SELECT coupon_lock.coupon_claim(NULL, ''x'')');
SELECT prove_mem.fails(format('SELECT coupon_lock.coupon_claim(%s, %L)', :b, 'm-' || :n));
PGB
pv_has_function advisory_lock && cat >>"$script" <<'PGB'
SELECT coupon_lock.advisory_lock('mem-' || :n % 100);
SELECT coupon_lock.advisory_unlock('mem-' || :n % 100);
SELECT coupon_lock.advisory_xact_lock('mem-x-' || :n % 100, '0');
PGB
pv_has_function lease_acquire && cat >>"$script" <<'PGB'
SELECT coupon_lock.lease_acquire('mem-' || :n % 100, 'h', '1 minute') AS fence \gset
SELECT coupon_lock.lease_renew('mem-' || :n % 100, 'h', '1 minute');
SELECT coupon_lock.lease_check('mem-' || :n % 100, :fence);
SELECT coupon_lock.lease_release('mem-' || :n % 100, 'h');
PGB
if pv_has_function redis_lock && pv_has_setting redis_host; then
    cat >>"$script" <<'PGB'
SELECT coupon_lock.redis_lock('mem-' || :n % 100, '10 s') AS token \gset
SELECT coupon_lock.redis_extend('mem-' || :n % 100, ':token', '10 s');
SELECT coupon_lock.redis_unlock('mem-' || :n % 100, ':token');
SELECT coupon_lock.redis_xact_lock('mem-x-' || :n % 100, '10 s');
PGB
    pv_has_function hybrid_xact_lock &&
        echo "SELECT coupon_lock.hybrid_xact_lock('mem-h-' || :n % 100, '10 s', '0');" >>"$script"
fi
per_txn=$(grep -cE 'coupon_lock\.' "$script")
txns=$(( (CALLS + per_txn - 1) / per_txn ))
every=$(( txns / 20 > 0 ? txns / 20 : 1 ))
echo "$per_txn calls per transaction, $txns transactions, a sample every $every"
echo "\\if :n % $every = 0
SELECT prove_mem.sample(:n * $per_txn);
\\endif" >>"$script"

pv_psql >/dev/null <<SQL || { pv_fail "memory setup"; pv_done memory; exit 1; }
CREATE SCHEMA prove_mem;
CREATE TABLE prove_mem.sample (calls bigint, contexts_bytes bigint, rss_kb bigint, anon_kb bigint);
CREATE FUNCTION prove_mem.sample(calls bigint) RETURNS void LANGUAGE sql AS \$\$
    INSERT INTO prove_mem.sample
    SELECT calls, (SELECT sum(total_bytes) FROM pg_backend_memory_contexts),
           (regexp_match(pg_read_file('/proc/self/status'), 'VmRSS:\\s+(\\d+)'))[1]::bigint,
           (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\\s+(\\d+)'))[1]::bigint
\$\$;
-- An error path: the call must fail with a documented SQLSTATE.
CREATE FUNCTION prove_mem.fails(q text) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
    EXECUTE q;
    RAISE EXCEPTION 'expected an error from: %', q USING ERRCODE = 'XX001';
EXCEPTION WHEN OTHERS THEN
    IF SQLSTATE NOT IN ('22004', '40001', '55000', 'CL001', 'CL004', 'CL005') THEN
        RAISE;
    END IF;
    RETURN SQLSTATE;
END \$\$;
SELECT coupon_lock.create_batch('memory', $txns + 10, 1, NULL, '1 hour');
SELECT coupon_lock.create_batch('memory-issue', $txns + 10, 1, NULL, '1 hour');
SQL
b2first=$(pv_psql -c "SELECT first_coupon_id FROM coupon_lock.batch WHERE name = 'memory-issue'")

opts=""
pv_has_setting redis_host &&
    opts="-c coupon_lock.redis_host=127.0.0.1 -c coupon_lock.redis_port=${CL_REDIS_PORT:-6489}"
PGOPTIONS=$opts "$CL_PGBIN/pgbench" -n -d "$PV_DB" -c 1 -t "$txns" -D n=0 -D b=1 -D b2first="$b2first" \
    -f "$script" >"$PV_TMP/memory_pgbench.log" 2>&1
rc=$?
grep -E '^(number of transactions actually|number of failed|tps)' "$PV_TMP/memory_pgbench.log"
pv_check "one backend made about $CALLS calls across the API without an error" \
    test "$rc" = 0 -a "$(pv_psql -c "SELECT max(calls) >= $CALLS - $per_txn * $every FROM prove_mem.sample")" = t ||
    tail -n 5 "$PV_TMP/memory_pgbench.log"

echo "samples (calls, memory contexts kB, RSS kB, private RSS (RssAnon) kB):"
pv_table "SELECT calls, contexts_bytes / 1024 AS contexts_kb, rss_kb, anon_kb AS private_rss_kb FROM prove_mem.sample ORDER BY calls"
# Warm-up: the first sample after a fifth of the calls (plans prepared,
# caches filled); growth is measured from there to the last sample.
IFS='|' read -r ctx_growth rss_growth anon_growth first last <<<"$(pv_psql -c "
    WITH s AS (SELECT * FROM prove_mem.sample WHERE calls >= (SELECT max(calls) / 5 FROM prove_mem.sample))
    SELECT (SELECT contexts_bytes FROM s ORDER BY calls DESC LIMIT 1) / 1024 - (SELECT contexts_bytes FROM s ORDER BY calls LIMIT 1) / 1024,
           (SELECT rss_kb FROM s ORDER BY calls DESC LIMIT 1) - (SELECT rss_kb FROM s ORDER BY calls LIMIT 1),
           (SELECT anon_kb FROM s ORDER BY calls DESC LIMIT 1) - (SELECT anon_kb FROM s ORDER BY calls LIMIT 1),
           (SELECT min(calls) FROM s), (SELECT max(calls) FROM s)")"
echo "growth from call $first to call $last: memory contexts ${ctx_growth} kB, RSS ${rss_growth} kB, private RSS ${anon_growth} kB"
pv_check "memory contexts flat: grew ${ctx_growth:-?} kB over $((${last:-0} - ${first:-0})) calls (limit $MAX_GROWTH_KB kB)" \
    test "${ctx_growth:-999999}" -lt "$MAX_GROWTH_KB"
# malloc'ed memory (hiredis replies, for one) is outside the contexts: the
# backend's private RSS must stay flat too.
pv_check "private RSS flat: grew ${anon_growth:-?} kB (limit $MAX_GROWTH_KB kB)" \
    test "${anon_growth:-999999}" -lt "$MAX_GROWTH_KB"

# Sweeps of CL_MEMORY_SWEEP_ROWS coupons (default 1,000,000) in one call each
# (issue 10 item 1: they used to grow ~16 kB per coupon until the call
# returned, 16 GB for a million).  The backend's private RSS is sampled from
# outside while the call runs; its peak may exceed the level before the call
# by at most CL_MEMORY_SWEEP_MAX_KB (default 65536: a few chunks' worth).  The
# rows per second are reported, not judged (docs/performance.md).
SWEEP_ROWS=${CL_MEMORY_SWEEP_ROWS:-1000000}
SWEEP_MAX_KB=${CL_MEMORY_SWEEP_MAX_KB:-65536}

# sweep_peak CALL EXPECTED: runs CALL in a backend of its own and checks that it
# returns EXPECTED within the memory bound.
sweep_peak() {
    local call=$1 expected=$2 fifo=$PV_TMP/memory_sweep.out pid before peak now result start secs samples=0
    rm -f "$fifo"
    pv_psql -c "SELECT pg_backend_pid(), (regexp_match(pg_read_file('/proc/self/status'), 'RssAnon:\s+(\d+)'))[1]" \
        -c "SELECT pg_sleep(0.5)" -c "SELECT $call" >"$fifo" 2>&1 &
    local job=$!
    for _ in $(seq 100); do [ -s "$fifo" ] && break; sleep 0.1; done
    IFS='|' read -r pid before <"$fifo"
    peak=${before:-0}
    start=$(date +%s.%N)
    while kill -0 "$job" 2>/dev/null; do
        now=$(sed -n 's/^RssAnon:\s*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
        [ -n "$now" ] && samples=$((samples + 1))
        [ -n "$now" ] && [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.2
    done
    wait "$job"
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a - 0.5 }')
    result=$(sed -n 3p "$fifo")
    echo "$call: returned ${result:-?} in ${secs} s ($(awk -v n="${result:-0}" -v s="$secs" 'BEGIN { printf "%d", n / (s > 0 ? s : 1) }') rows/s), private RSS ${before:-?} kB before, peak $peak kB ($samples samples)"
    pv_check "$call returned $expected" test "$result" = "$expected" || cat "$fifo"
    pv_check "$call: the backend's memory was sampled while it ran ($samples samples)" test "$samples" -gt 0
    pv_check "$call in constant memory: peak private RSS $((peak - ${before:-0})) kB above the start (limit $SWEEP_MAX_KB kB)" \
        test "$((peak - ${before:-0}))" -lt "$SWEEP_MAX_KB"
}

if pv_psql >/dev/null <<SQL; then
SELECT coupon_lock.release_expired_freezes(100000000);
SELECT coupon_lock.create_batch('memory-sweep', $SWEEP_ROWS, 1, clock_timestamp() + interval '1 day') AS b \gset
-- every coupon frozen (as a million coupon_freeze calls would leave them), lapsed a second from now
UPDATE coupon_lock.coupon SET state = 'frozen', owner_id = 'u' || coupon_id, order_id = 'o' || coupon_id,
       frozen_until = now() + interval '1 second', version = 3 WHERE batch_id = :b;
INSERT INTO coupon_lock.freeze_deadline (frozen_until, coupon_id, version)
SELECT frozen_until, coupon_id, version FROM coupon_lock.coupon WHERE batch_id = :b;
SQL
    sleep 1.5
    sweep_peak "coupon_lock.release_expired_freezes($SWEEP_ROWS)" "$SWEEP_ROWS"
    # the batch ends now: its (now issued) coupons expire
    pv_psql -c "UPDATE coupon_lock.batch SET valid_until = now() WHERE name = 'memory-sweep'" >/dev/null
    sweep_peak "coupon_lock.expire_coupons($SWEEP_ROWS)" "$SWEEP_ROWS"
    pv_check "the sweeps wrote one ledger row per coupon" test "$(pv_psql -c "
        SELECT count(*) FILTER (WHERE e.op = 'release') || '/' || count(*) FILTER (WHERE e.op = 'expire')
          FROM coupon_lock.coupon_event e JOIN coupon_lock.coupon c USING (coupon_id)
          JOIN coupon_lock.batch b USING (batch_id) WHERE b.name = 'memory-sweep'")" = "$SWEEP_ROWS/$SWEEP_ROWS"
else
    pv_fail "sweep setup"
fi
pv_done memory
