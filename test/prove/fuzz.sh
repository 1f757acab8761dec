#!/usr/bin/env bash
# Hostile input: every function of schema coupon_lock (read from pg_proc, so
# new functions are fuzzed as soon as they exist) is called
# CL_FUZZ_CALLS times (default 1500) with NULLs, extremes of every type,
# empty, control-character and megabyte strings, negative and enormous
# intervals, unknown ids (test/prove/fuzz.py).  Every SQLSTATE is recorded.
# Passes when no call raised XX000 (or any class XX/58 error), every
# function raised only the SQLSTATEs the README lists, the postmaster
# never restarted, the server log shows no crash, and the coupon invariants
# still hold.  CL_FUZZ_SEED picks another random sequence.
set -u
. "$(dirname "$0")/common.sh"
PV_DB=prove_fuzz
CALLS=${CL_FUZZ_CALLS:-1500}
SEED=${CL_FUZZ_SEED:-$(date +%s)}

pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done fuzz; exit 1; }
pv_psql >/dev/null <<'SQL' || { pv_fail "fuzz setup"; pv_done fuzz; exit 1; }
CREATE SCHEMA prove_fuzz;
CREATE TABLE prove_fuzz.result (fn text, sqlstate text, message text, call text);
-- Runs one call and records how it ended.  query_canceled is caught by name
-- (OTHERS does not catch it): a call that waits until statement_timeout is
-- an answer, not a failure.
CREATE FUNCTION prove_fuzz.try(fn text, q text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    EXECUTE q;
    INSERT INTO prove_fuzz.result VALUES (fn, '00000');
EXCEPTION
    WHEN query_canceled THEN
        INSERT INTO prove_fuzz.result VALUES (fn, '57014');
    WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        INSERT INTO prove_fuzz.result VALUES (fn, st, left(msg, 200), left(q, 300));
END $$;
-- Coupons in every state for the id pools to hit.
SELECT coupon_lock.create_batch('fuzz', 50, 2, NULL, '1 hour') AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'owner-' || i) FROM generate_series(1, 30) i \g /dev/null
SELECT coupon_lock.coupon_freeze(c.coupon_id, c.owner_id, 'order-' || c.coupon_id)
  FROM coupon_lock.coupon c WHERE c.state = 'issued' AND c.coupon_id % 3 = 0 \g /dev/null
SELECT coupon_lock.coupon_redeem(c.coupon_id, c.order_id)
  FROM coupon_lock.coupon c WHERE c.state = 'frozen' AND c.coupon_id % 2 = 0 \g /dev/null
SELECT coupon_lock.coupon_revoke(coupon_id) FROM coupon_lock.coupon WHERE coupon_id % 7 = 0 \g /dev/null
SQL

# The functions and their argument types.
pv_psql -c "SELECT p.oid::regprocedure, p.proname, p.pronargs, p.pronargdefaults,
                   coalesce((SELECT string_agg(format_type(t, NULL), ',' ORDER BY i)
                               FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)), '')
              FROM pg_proc p
             WHERE p.pronamespace = 'coupon_lock'::regnamespace AND p.prokind = 'f'
             ORDER BY 1::text" >"$PV_TMP/fuzz_functions.txt"
nfun=$(wc -l <"$PV_TMP/fuzz_functions.txt")
echo "fuzzing $nfun functions, $CALLS calls each, seed $SEED"
reset=()
pv_has_function redis_lock && reset=("\\! redis-cli -p ${CL_REDIS_PORT:-6489} FLUSHDB >/dev/null")
python3 "$PV_DIR/fuzz.py" "$CALLS" "$SEED" "${reset[@]}" <"$PV_TMP/fuzz_functions.txt" >"$PV_TMP/fuzz_calls.sql"

# Bound each call; keep batches small (the quantity pool holds 2^31-1); point
# the Redis functions, where they exist, at the test Redis.
opts="-c statement_timeout=${CL_FUZZ_TIMEOUT_MS:-500} -c coupon_lock.max_batch_quantity=2000"
pv_has_setting redis_port &&
    opts="$opts -c coupon_lock.redis_host=127.0.0.1 -c coupon_lock.redis_port=${CL_REDIS_PORT:-6489}"
started=$(pv_psql -c "SELECT pg_postmaster_start_time()")
mark=$(pv_log_mark)
PGOPTIONS=$opts "$CL_PGBIN/psql" -X -q -d "$PV_DB" -o /dev/null -f "$PV_TMP/fuzz_calls.sql" \
    >"$PV_TMP/fuzz_psql.log" 2>&1
echo "psql finished (exit $?); its messages: $(grep -c . "$PV_TMP/fuzz_psql.log") lines in $PV_TMP/fuzz_psql.log"

echo "calls per function and SQLSTATE:"
pv_psql -F ' ' -c "SELECT fn, sqlstate, count(*) FROM prove_fuzz.result GROUP BY 1, 2 ORDER BY 1, 2"
# A call whose timeout fired after it, while try() was recording it, has no
# row but a psql "statement timeout" error; any other psql error is a failure.
total=$(pv_psql -c "SELECT count(*) FROM prove_fuzz.result")
late=$(grep -c 'ERROR:  canceling statement due to statement timeout' "$PV_TMP/fuzz_psql.log")
other=$(grep 'ERROR:' "$PV_TMP/fuzz_psql.log" | grep -vc 'canceling statement due to statement timeout')
pv_check "every generated call ran ($total recorded + $late timed out while recording, of $((nfun * CALLS)))" \
    test "$((total + late))" -eq $((nfun * CALLS)) -a "$other" = 0 || grep 'ERROR:' "$PV_TMP/fuzz_psql.log" | head
bad=$(pv_psql -c "SELECT count(*) FROM prove_fuzz.result WHERE sqlstate ~ '^(XX|58)'")
pv_check "no call raised XX000 or another internal error (class XX or 58)" test "$bad" = 0 ||
    pv_psql -c "SELECT fn, sqlstate, message, call FROM prove_fuzz.result
                 WHERE sqlstate ~ '^(XX|58)' LIMIT 20"
# Every function answers only with the SQLSTATEs the README lists: the
# coupon functions (with the guard off, as here) with the coupon codes, the
# lock functions with those and the lock codes.  57014 is a call that ran
# into statement_timeout.  22P02 is PostgreSQL's type input refusing an
# argument before the function runs (a label that is no coupon_state).
undocumented=$(pv_psql -c "SELECT string_agg(DISTINCT fn || ': ' || sqlstate || ' ' || message, '; ')
    FROM prove_fuzz.result
   WHERE sqlstate !~ '^(00000|22004|22023|22P02|40001|40P01|55000|57014|CL00[1-6])$'
     AND (fn ~ '^coupon_lock\.(create_batch|coupon_|release_expired_freezes|expire_coupons)'
          OR sqlstate !~ '^(55P03|08001|08006|08P01|38000|0A000)$')")
pv_check "every function raises only the SQLSTATEs the README lists" test -z "$undocumented" ||
    echo "  $undocumented" | cut -c 1-2000
pv_check "the postmaster did not restart" \
    test "$(pv_psql -c "SELECT pg_postmaster_start_time()")" = "$started"
crash=$(pv_log_since "$mark" | grep -E 'terminated by signal|was terminated|PANIC|TRAP:|server process .* exited with exit code [^0]|reinitializing')
pv_check "the server log shows no crashed backend" test -z "$crash" || echo "$crash" | head
pv_sql_checks "$PV_DIR/invariants.sql"
pv_done fuzz
