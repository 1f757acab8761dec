# Sourced by crash.sh: parts 2 and 3, on test/test.sh's cluster.  Each part
# checks only the functions and settings that exist, and says "skipped"
# for the rest, so it starts testing the lock modules the day they merge.

# Settings that point a session at a Redis, for those that exist.
redis_opts() {
    local port=$1 opts="" s
    pv_has_setting redis_host && opts="$opts -c coupon_lock.redis_host=127.0.0.1"
    pv_has_setting redis_port && opts="$opts -c coupon_lock.redis_port=$port"
    for s in redis_connect_timeout redis_command_timeout; do
        pv_has_setting "$s" && opts="$opts -c coupon_lock.$s=500"
    done
    echo "$opts"
}

redis_key() {   # the Redis key of a lock key: the configured prefix first
    echo "$(pv_psql -c "SELECT current_setting('coupon_lock.redis_key_prefix', true)")$1"
}

# ---- 2. a backend terminated while it holds locks ----
terminated_holder_part() {
    local PV_DB=prove_locks adv=0 red=0 hyb=0 holder_pid pid i
    pv_fresh_db || { pv_fail "could not create $PV_DB"; return; }
    pv_has_function advisory_xact_lock && adv=1
    pv_has_function redis_xact_lock && red=1
    pv_has_function hybrid_xact_lock && hyb=1
    [ $adv = 1 ] || pv_skip "terminated holder, advisory locks: coupon_lock.advisory_lock does not exist yet"
    [ $red = 1 ] || pv_skip "terminated holder, Redis xact locks: coupon_lock.redis_xact_lock does not exist yet"
    [ $adv = 1 ] || [ $red = 1 ] || return 0
    local opts
    opts=$(redis_opts "${CL_REDIS_PORT:-6489}")
    local sql=()
    [ $adv = 1 ] && sql+=(-c "SELECT coupon_lock.advisory_lock('prove-session-key')")
    sql+=(-c "BEGIN")
    [ $adv = 1 ] && sql+=(-c "SELECT coupon_lock.advisory_xact_lock('prove-xact-key')")
    [ $red = 1 ] && sql+=(-c "SELECT coupon_lock.redis_xact_lock('prove-redis-key', '60 s')")
    [ $hyb = 1 ] && sql+=(-c "SELECT coupon_lock.hybrid_xact_lock('prove-hybrid-key', '60 s')")
    sql+=(-c "SELECT pg_sleep(300)")
    PGAPPNAME=prove_holder PGOPTIONS=$opts "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" "${sql[@]}" \
        >"$PV_TMP/holder.log" 2>&1 &
    holder_pid=$!
    for i in $(seq 100); do
        pid=$(pv_psql -c "SELECT pid FROM pg_stat_activity
                           WHERE application_name = 'prove_holder' AND wait_event = 'PgSleep'")
        [ -n "$pid" ] && break
        sleep 0.1
    done
    if [ -z "$pid" ]; then
        pv_fail "the lock holder did not get its locks"; cat "$PV_TMP/holder.log"
        kill "$holder_pid" 2>/dev/null; wait "$holder_pid"; return
    fi
    local rkey hkey
    rkey=$(redis_key prove-redis-key)
    hkey=$(redis_key prove-hybrid-key)
    [ $adv = 1 ] && pv_check "the holder holds its advisory locks before it is terminated" \
        test "$(pv_psql -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $pid")" -ge 2
    [ $red = 1 ] && pv_check "the holder's Redis key exists before it is terminated" \
        test "$(redis-cli -p "${CL_REDIS_PORT:-6489}" EXISTS "$rkey")" = 1

    pv_psql -c "SELECT pg_terminate_backend($pid, 10000)" >/dev/null
    wait "$holder_pid"

    if [ $adv = 1 ]; then
        pv_check "no advisory lock of the terminated backend is left in pg_locks" \
            test "$(pv_psql -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $pid")" = 0
        pv_check "another session takes the session and xact keys at once" \
            test "$(pv_psql -c "BEGIN" -c "SELECT coupon_lock.advisory_lock('prove-session-key', '0')
                                         AND coupon_lock.advisory_xact_lock('prove-xact-key', '0')" -c "COMMIT")" = t
    fi
    if [ $red = 1 ]; then
        # When does the Redis key go?  At the backend's exit (its transaction
        # aborts and the release runs) - or only when its TTL runs out.
        local left
        left=$(redis-cli -p "${CL_REDIS_PORT:-6489}" PTTL "$rkey")
        if [ "$left" = -2 ]; then
            pv_ok "the Redis xact lock went when the backend exited (before its 60 s TTL)"
        else
            pv_fail "the Redis xact lock outlived its terminated backend (expires by TTL in $left ms)"
        fi
        [ $hyb = 1 ] && pv_check "the hybrid lock's Redis key went with the backend too" \
            test "$(redis-cli -p "${CL_REDIS_PORT:-6489}" EXISTS "$hkey")" = 0
        pv_check "another session takes the Redis key at once" \
            test "$(PGOPTIONS=$opts pv_psql -c "BEGIN" \
                      -c "SELECT coupon_lock.redis_xact_lock('prove-redis-key', '5 s', '0') IS NOT NULL" -c "COMMIT")" = t
    fi
}

# ---- 3. Redis killed under load with the guard on ----
redis_guard_part() {
    local PV_DB=prove_guard opts bench_pid out
    pv_fresh_db || { pv_fail "could not create $PV_DB"; return; }
    if ! pv_has_setting redis_guard || ! pv_has_function hybrid_xact_lock; then
        pv_skip "Redis outage under load: coupon_lock.redis_guard / hybrid_xact_lock do not exist yet"
        return 0
    fi
    ( cl_redis_start killredis "$KILL_REDIS_PORT" ) || { pv_fail "could not start Redis on $KILL_REDIS_PORT"; return; }
    pv_psql -v users=100 -v run_seconds=30 -f "$PV_DIR/workload.sql" >/dev/null ||
        { pv_fail "guard workload setup"; return; }
    pv_psql >/dev/null <<'SQL'
-- One guarded freeze of a live coupon for its own owner: its SQLSTATE
-- ('00000': went through) and how long it took.
CREATE FUNCTION prove.guarded_freeze(id bigint, ord text, OUT state text, OUT ms numeric)
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    own text := (SELECT owner_id FROM coupon_lock.coupon WHERE coupon_id = id);
BEGIN
    PERFORM coupon_lock.coupon_freeze(id, own, ord, NULL, '1 hour');
    state := '00000';
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
EXCEPTION WHEN OTHERS THEN
    state := SQLSTATE;
    ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SELECT coupon_lock.coupon_claim(1, 'probe-owner-' || i) FROM generate_series(1, 30) i;
SQL
    opts="$(redis_opts "$KILL_REDIS_PORT") -c coupon_lock.redis_guard=on"
    local f=$PV_TMP/guard_load.pgb
    printf '%s\n' '\set pick random(1, 1000000000)' '\set mode random(0, 1)' '\set r random(0, 1000000)' \
        '\set k random(0, 7)' \
        "SELECT prove.step((ARRAY['claim','issue','freeze','unfreeze','redeem','revoke','release','expire'])[:k + 1], :pick, :mode, :r);" >"$f"
    PGOPTIONS=$opts "$CL_PGBIN/pgbench" -n -d "$PV_DB" -c 8 -j 2 -T 12 --max-tries=5 -f "$f" \
        >"$PV_TMP/guard_pgbench.log" 2>&1 &
    bench_pid=$!
    sleep 3
    kill -9 "$(cat "$CL_ROOT/tmp/killredis/redis.pid")"; rm -f "$CL_ROOT/tmp/killredis/redis.pid"
    sleep 1
    # During the outage: guarded freezes of the probe coupons, all refused
    # with class 08 and none changing anything.  statement_timeout turns a
    # hang into a failure (57014) instead of a stuck test.
    out=$(PGOPTIONS="$opts -c statement_timeout=30s" pv_psql <<'SQL'
CREATE TEMP TABLE probe AS
    SELECT coupon_id, version FROM coupon_lock.coupon WHERE owner_id LIKE 'probe-owner-%' AND state = 'issued';
CREATE TEMP TABLE answer AS
    SELECT p.coupon_id, g.* FROM probe p, prove.guarded_freeze(p.coupon_id, 'probe-order') g;
SELECT count(*), count(*) FILTER (WHERE state NOT LIKE '08%'), max(ms)::int,
       (SELECT count(*) FROM probe p JOIN coupon_lock.coupon c USING (coupon_id) WHERE c.version <> p.version),
       (SELECT count(*) FROM coupon_lock.coupon_event WHERE order_id = 'probe-order'),
       string_agg(DISTINCT state, ',')
  FROM answer;
SQL
    )
    local n not08 maxms changed events states
    IFS='|' read -r n not08 maxms changed events states <<<"$out"
    echo "outage: $n guarded calls answered $states, the slowest in ${maxms:-?} ms"
    pv_check "every guarded call during the outage failed with class 08 ($n calls)" \
        test "${not08:-x}" = 0 -a "${n:-0}" -gt 0
    pv_check "no coupon changed through a failed guarded call" test "${changed:-x}" = 0 -a "${events:-x}" = 0
    # Redis comes back on the same port; the same session works again by itself.
    ( cl_redis_start killredis "$KILL_REDIS_PORT" ) || pv_fail "could not restart Redis"
    out=$(PGOPTIONS=$opts pv_psql <<'SQL'
DO $$
BEGIN
    -- a probe coupon still issued, picked again each time: the load may
    -- take the one picked before
    FOR i IN 1..50 LOOP
        EXIT WHEN (prove.guarded_freeze(
                       (SELECT coupon_id FROM coupon_lock.coupon
                         WHERE owner_id LIKE 'probe-owner-%' AND state = 'issued'
                         ORDER BY random() LIMIT 1),
                       'probe-order-after')).state = '00000';
        PERFORM pg_sleep(0.2);
    END LOOP;
END $$;
SELECT count(*) FROM coupon_lock.coupon_event WHERE order_id = 'probe-order-after';
SQL
    )
    pv_check "guarded calls work again once Redis is back" test "$out" = 1
    wait "$bench_pid"
    pv_check "the load ran through the outage without an aborted client" \
        bash -c '! grep -q aborted "$1"' _ "$PV_TMP/guard_pgbench.log"
    pv_check "no unexpected SQLSTATE in the workload (class 08 expected during the outage)" \
        test "$(pv_psql -c "SELECT count(*) FROM prove.unexpected WHERE sqlstate NOT LIKE '08%'")" = 0
    pv_sql_checks "$PV_DIR/invariants.sql"
    cl_redis_stop killredis
}

terminated_holder_part
redis_guard_part
