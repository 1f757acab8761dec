#!/usr/bin/env bash
# Faults.
#  1. Immediate shutdown under load: clients (crash_client.py) run the stress
#     workload on a cluster of this layer's own (port CL_CRASH_PGPORT) and
#     log every acknowledged transition; half way through, pg_ctl -m
#     immediate (a crash: no checkpoint, WAL replay at restart); the cluster
#     is restarted while the clients keep going.  Then every acknowledged
#     transition must be in the ledger and the invariants must hold.
#  2. A backend terminated while it holds advisory locks and Redis xact
#     locks: every lock is free afterwards (once those functions exist).
#  3. Redis killed under load with coupon_lock.redis_guard = on: guarded
#     calls fail with class 08, change nothing, and work again once Redis is
#     back, without reconnecting (once redis_guard exists).
# CL_CRASH_SECONDS (default 16) is the length of the load in part 1.
set -u
. "$(dirname "$0")/common.sh"
export CL_PGBIN
CRASH_PORT=${CL_CRASH_PGPORT:-54932}
KILL_REDIS_PORT=${CL_KILL_REDIS_PORT:-6532}
RUN=${CL_CRASH_SECONDS:-16}
WORKERS=${CL_CRASH_CLIENTS:-16}

# ---- 1. immediate shutdown under load ----
crash_part() {
    local PGPORT=$CRASH_PORT PV_DB=prove_crash ack=$PV_TMP/crash_acks.txt pgdata client_pid result
    pgdata=$CL_ROOT/tmp/crash/pg
    ( cl_pg_start crash "$CRASH_PORT" ) || { pv_fail "crash cluster did not start"; return; }
    local mark
    mark=$(pv_log_mark crash)
    trap 'cl_pg_stop crash' EXIT
    pv_fresh_db && pv_psql -v users=200 -v run_seconds="$RUN" -f "$PV_DIR/workload.sql" >/dev/null ||
        { pv_fail "crash workload setup"; return; }
    rm -f "$ack"
    python3 "$PV_DIR/crash_client.py" "$PV_DB" "$WORKERS" "$RUN" "$ack" >"$PV_TMP/crash_client.out" 2>&1 &
    client_pid=$!
    sleep $((RUN * 2 / 5))
    local before_crash
    before_crash=$(wc -l <"$ack")
    echo "immediate shutdown after $before_crash acknowledged transitions"
    cl_as_owner "$CL_PGBIN/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null ||
        pv_fail "pg_ctl -m immediate stop"
    sleep 1
    cl_as_owner "$CL_PGBIN/pg_ctl" -D "$pgdata" -l "$CL_ROOT/tmp/crash/postgresql.log" -w -t 120 start >/dev/null ||
        { pv_fail "the cluster did not come back after the crash"; tail -n 20 "$CL_ROOT/tmp/crash/postgresql.log"; }
    wait "$client_pid"
    result=$(cat "$PV_TMP/crash_client.out")
    echo "clients: $result"
    pv_check "recovery ran (the log says so)" \
        bash -c 'grep -q "database system was interrupted\|database system was not properly shut down" <<<"$1"' \
        _ "$(pv_log_since "$mark" crash)"
    local total after
    total=$(wc -l <"$ack")
    after=$((total - before_crash))
    pv_check "clients were served before the crash ($before_crash) and after the restart ($after)" \
        test "$before_crash" -gt 0 -a "$after" -gt 0
    # Every acknowledged transition is in the ledger: a transition (or its
    # idempotent retry) as the event that made that version, by the same
    # operation (an unfreeze retry may answer with the release sweep's
    # version); a claim as the coupon's claim event.
    local check="SELECT count(*), count(*) FILTER (WHERE m), string_agg(a, ', ') FILTER (WHERE m)
                   FROM (SELECT op || ' ' || coupon_id || ' ' || coalesce(version::text, '') AS a,
                                NOT EXISTS (SELECT FROM coupon_lock.coupon_event e
                                             WHERE e.coupon_id = ack.coupon_id
                                               AND (ack.op = 'claim' AND e.op = 'claim' OR
                                                    e.version = ack.version AND
                                                    (e.op = ack.op OR ack.op = 'unfreeze' AND e.op = 'release'))) AS m
                           FROM ack) x"
    local n missing lost planted
    IFS='|' read -r n missing lost < <(pv_psql -c "CREATE TEMP TABLE ack (op text, coupon_id bigint, version bigint)" \
        -c "\\copy ack FROM '$ack' WITH (DELIMITER ' ')" -c "$check" 2>&1)
    pv_check "all $n acknowledged transitions are in the ledger (${missing:-?} missing${lost:+: $lost})" \
        test "${missing:-x}" = 0 -a "${n:-0}" -gt 0
    # the check can fail: an acknowledgement the ledger does not have
    planted=$(pv_psql -c "CREATE TEMP TABLE ack (op text, coupon_id bigint, version bigint)" \
        -c "INSERT INTO ack VALUES ('freeze', 1, 1000000), ('claim', -1, NULL)" -c "$check" | cut -d'|' -f2)
    pv_check "the acknowledgement check catches transitions missing from the ledger" test "$planted" = 2
    pv_check "no unexpected SQLSTATE in the workload" \
        test "$(pv_psql -c 'SELECT count(*) FROM prove.unexpected')" = 0
    pv_sql_checks "$PV_DIR/invariants.sql"
    cl_pg_stop crash
    trap - EXIT
}

crash_part
. "$PV_DIR/crash_locks.sh"
pv_done crash
