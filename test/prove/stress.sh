#!/usr/bin/env bash
# Stress with invariants: CL_STRESS_CLIENTS (default 32) pgbench clients run a
# random mix of every coupon operation for CL_STRESS_SECONDS (default 30)
# over a few thousand coupons in a few batches (test/prove/workload.sql), then
# test/prove/invariants.sql checks the ledger against the tables.
set -u
. "$(dirname "$0")/common.sh"
PV_DB=prove_stress
CLIENTS=${CL_STRESS_CLIENTS:-32}
SECONDS_RUN=${CL_STRESS_SECONDS:-30}
USERS=${CL_STRESS_USERS:-300}

pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done stress; exit 1; }
pv_psql -v users="$USERS" -v run_seconds="$SECONDS_RUN" -f "$PV_DIR/workload.sql" >/dev/null ||
    { pv_fail "workload setup"; pv_done stress; exit 1; }

# One pgbench script per operation, weighted like a flash sale: many claims
# and freezes, fewer redeems, rare revokes and batch creations, a steady
# trickle of sweeps.  mode: 0 no expected_version, 1 current, 2 stale.
scripts=()
for spec in claim@20 issue@6 freeze@20 unfreeze@8 redeem@12 revoke@2 release@4 expire@2 create@1; do
    op=${spec%@*}
    f=$PV_TMP/stress_$op.pgb
    cat >"$f" <<PGB
\\set pick random(1, 1000000000)
\\set mode random(0, 2)
\\set r random(0, 1000000)
SELECT prove.step('$op', :pick, :mode, :r);
PGB
    scripts+=(-f "$f@${spec#*@}")
done

# A quarter of the clients run at REPEATABLE READ and a quarter at
# SERIALIZABLE (their 40001s are retried like the others), the rest at
# READ COMMITTED: one pgbench per isolation level, side by side.
echo "pgbench: $CLIENTS clients, $SECONDS_RUN s"
pids=()
for level in "read committed:$((CLIENTS - 2 * (CLIENTS / 4)))" "repeatable read:$((CLIENTS / 4))" \
             "serializable:$((CLIENTS / 4))"; do
    n=${level#*:}; level=${level%:*}
    [ "$n" -gt 0 ] || continue
    PGOPTIONS="-c default_transaction_isolation=${level/ /\\ }" \
        "$CL_PGBIN/pgbench" -n -d "$PV_DB" -c "$n" -j 1 -T "$SECONDS_RUN" --max-tries=20 \
        --failures-detailed "${scripts[@]}" >"$PV_TMP/stress_pgbench_${level/ /_}.log" 2>&1 &
    pids+=("$!:$level:$n")
done
for p in "${pids[@]}"; do
    IFS=: read -r pid level n <<<"$p"
    wait "$pid"; rc=$?
    log=$PV_TMP/stress_pgbench_${level/ /_}.log
    echo "-- $level, $n clients:"
    grep -E '^(number of (transactions actually|failed|transactions retried)|tps)' "$log"
    if [ "$rc" -eq 0 ] && ! grep -q 'aborted' "$log"; then
        pv_ok "pgbench ran $n clients at $level for $SECONDS_RUN s, no client aborted"
    else
        pv_fail "pgbench at $level (exit $rc)"; tail -n 20 "$log"
    fi
done

echo "outcomes per operation (ok, or the documented SQLSTATE):"
pv_table "SELECT op, result, count(*) FROM prove.outcome GROUP BY 1, 2 ORDER BY 1, 2"
echo "ledger events per operation:"
pv_table "SELECT op, count(*) FROM coupon_lock.coupon_event GROUP BY 1 ORDER BY 1"

pv_check "no unexpected SQLSTATE or failed retry check in the workload" \
    test "$(pv_psql -c 'SELECT count(*) FROM prove.unexpected')" = 0 ||
    pv_psql -c "SELECT op, coupon_id, sqlstate, message, detail FROM prove.unexpected LIMIT 20"
missing=$(pv_psql -c "SELECT string_agg(op, ', ') FROM unnest(ARRAY['claim', 'issue', 'freeze',
             'unfreeze', 'redeem', 'revoke', 'release', 'expire']) op
             WHERE NOT EXISTS (SELECT FROM coupon_lock.coupon_event e WHERE e.op = op.op)")
pv_check "every kind of transition happened at least once${missing:+ (missing: $missing)}" test -z "$missing"

pv_sql_checks "$PV_DIR/invariants.sql"

# The checks can fail: tampered tables (rolled back) must trip them.
tripped=$( { echo "BEGIN;"
             echo "UPDATE coupon_lock.coupon SET version = version + 1 WHERE coupon_id = 1;"
             echo "UPDATE coupon_lock.owner_quota SET held = held + 1 WHERE ctid = (SELECT min(ctid) FROM coupon_lock.owner_quota);"
             echo "INSERT INTO coupon_lock.coupon_event (coupon_id, op, from_state, to_state, version)"
             echo "     SELECT coupon_id, 'redeem', 'frozen', 'redeemed', version + 1 FROM coupon_lock.coupon_event"
             echo "      WHERE op = 'redeem' LIMIT 1;"
             cat "$PV_DIR/invariants.sql"; echo "ROLLBACK;"; } | pv_psql | grep -c '|f|')
pv_check "the invariant checks catch tampered tables ($tripped checks tripped)" test "$tripped" -ge 4
pv_done stress
