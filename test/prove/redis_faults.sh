#!/usr/bin/env bash
# Layer redis_faults: a misbehaving Redis and a paused one (issue 10,
# items 3, 5, 7, 8, 9, 10, 22).  A fake server (fake_redis.py) on
# CL_FAKE_REDIS_PORT (default 7056) answers with hostile headers, an extra
# reply, slow or stalled replies; a real redis-server of the layer's own on
# CL_FAULTS_REDIS_PORT (default 7055) is paused with SIGSTOP and has its
# clients killed.  The suite's Redis is never touched.  No duration is
# asserted: `timeout` only turns a hang into a failure.
set -u
. "$(dirname "$0")/common.sh"
PV_DB=cl_redis_faults
FAKE_PORT=${CL_FAKE_REDIS_PORT:-7056}
REAL_PORT=${CL_FAULTS_REDIS_PORT:-7055}
FAKE_LOG=$PV_TMP/fake_redis.log
FAKE_PID=$PV_TMP/fake_redis.pid
REAL_PIDFILE=$CL_ROOT/tmp/redis_faults/redis.pid

resume_real() { [ -f "$REAL_PIDFILE" ] && kill -CONT "$(cat "$REAL_PIDFILE")" 2>/dev/null; true; }
stop_fake() {
    [ -f "$FAKE_PID" ] && kill "$(cat "$FAKE_PID")" 2>/dev/null
    rm -f "$FAKE_PID"; true
}
cleanup() { stop_fake; resume_real; cl_redis_stop redis_faults; }
trap cleanup EXIT

# fake MODE: (re)starts the fake server in MODE with an empty log.
fake() {
    stop_fake; : >"$FAKE_LOG"
    python3 "$PV_DIR/fake_redis.py" "$FAKE_PORT" "$1" "$FAKE_LOG" &
    echo $! >"$FAKE_PID"
    for _ in $(seq 50); do
        grep -q '^0 LISTENING' "$FAKE_LOG" 2>/dev/null && return 0
        sleep 0.1
    done
    pv_fail "the fake Redis did not start on $FAKE_PORT"
}

# q PORT SQL...: psql on the layer's database with Redis at 127.0.0.1:PORT;
# prints SQLSTATEs of errors as "ERROR <code>", warnings as they come.
q() {
    local port=$1; shift
    printf '%s\n' "SET coupon_lock.redis_port = $port;" "SET coupon_lock.redis_connect_timeout = '2s';" \
        "SET coupon_lock.redis_command_timeout = '1s';" "\\set VERBOSITY verbose" "$@" |
        timeout 60 "$CL_PGBIN/psql" -X -q -At -d "$PV_DB" 2>&1
}
state_of() { grep -oE 'ERROR:  [0-9A-Z]{5}' <<<"$1" | head -n 1 | cut -c 9-; }

pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done redis_faults; exit 1; }
( cl_redis_start redis_faults "$REAL_PORT" ) || pv_fail "could not start Redis on $REAL_PORT"
real() { redis-cli -p "$REAL_PORT" "$@"; }

# ---- item 3: what a reply may announce is bounded ----
fake huge-array
out=$(q "$FAKE_PORT" "SELECT coupon_lock.redis_lock('a', '10s');")
pv_check "a *2147483647 array header is a protocol violation (08P01), not a wait or an allocation" \
    test "$(state_of "$out")" = 08P01 || echo "$out"
fake huge-bulk
out=$(q "$FAKE_PORT" "SELECT coupon_lock.redis_lock('a', '10s');")
pv_check "a \$2147483647 bulk header with a streaming body is a protocol violation (08P01)" \
    test "$(state_of "$out")" = 08P01 || echo "$out"

# ---- item 3: one deadline for the whole transaction-end release ----
fake slow-release
out=$(q "$FAKE_PORT" "BEGIN;" \
    "SELECT count(coupon_lock.redis_xact_lock('slow' || g, '60s')) FROM generate_series(1, 5) g;" "COMMIT;")
pv_check "5 releases answered 400 ms apart do not get 1 s each: one deadline, the release unconfirmed" \
    grep -q 'could not confirm the release of 5 Redis locks at transaction end' <<<"$out" || echo "$out"

# ---- item 9: an extra reply drops the connection ----
fake extra
out=$(q "$FAKE_PORT" "SELECT coupon_lock.redis_lock('first', '10s');" \
    "SELECT coupon_lock.redis_lock('second', '10s') IS NULL AS second_not_taken;")
pv_check "a reply left over after an exchange is a protocol violation (08P01)" \
    test "$(state_of "$out")" = 08P01 || echo "$out"
pv_check "the next call does not read the extra reply as its answer (nil: not taken)" \
    grep -qx 't' <<<"$out" || echo "$out"
pv_check "the next call came on a new connection" \
    bash -c 'grep -q "^1 SET" "$1" && grep -q "^2 SET" "$1"' _ "$FAKE_LOG" || cat "$FAKE_LOG"

# ---- item 9: a FATAL mid-exchange leaves nothing to read on that connection ----
fake stall-set
q "$FAKE_PORT" "BEGIN;" "SELECT coupon_lock.redis_xact_lock('held-first', '60s') IS NOT NULL;" \
    "SELECT coupon_lock.redis_xact_lock('fatal', '60s');" >"$PV_TMP/faults_fatal.out" &
victim=$!
sleep 1
pv_psql -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = '$PV_DB' AND query LIKE '%redis_xact_lock(''fatal''%' AND pid <> pg_backend_pid()" >/dev/null
wait "$victim"
sleep 3   # the stalled SET reply comes; nothing may be sent after it on connection 1
pv_check "after pg_terminate_backend mid-exchange, the exit's release is not sent on the cut-off connection" \
    bash -c '! grep -qE "^1 EVAL" "$1"' _ "$FAKE_LOG" || cat "$FAKE_LOG"
stop_fake

# ---- item 5: a SET NX whose reply was lost is deleted afterwards ----
kill -STOP "$(cat "$REAL_PIDFILE")"
out=$(q "$REAL_PORT" "SET statement_timeout = '300ms';" "SELECT coupon_lock.redis_xact_lock('pending', '60s');" \
    "RESET statement_timeout;" "\\! kill -CONT \$(cat $REAL_PIDFILE); sleep 0.5" \
    "SELECT coupon_lock.redis_lock('next-command', '60s') IS NOT NULL AS next_call_works;")
pv_check "statement_timeout while Redis is paused ends the SET NX wait (57014)" \
    test "$(state_of "$out")" = 57014 || echo "$out"
pv_check "the SET that ran once Redis resumed is deleted by the session's next command" \
    test "$(real EXISTS coupon_lock:pending)" = 0 || echo "$out"
# the same through the guard: the coupon is not held up for the guard's TTL
pv_psql -c "SELECT coupon_lock.create_batch('faults', 2, 2)" >/dev/null
c=$(pv_psql -c "SELECT max(first_coupon_id) FROM coupon_lock.batch")
gkey="coupon_lock:$(pv_psql -c "SELECT coupon_lock.guard_key($c)")"
kill -STOP "$(cat "$REAL_PIDFILE")"
out=$(q "$REAL_PORT" "SET coupon_lock.redis_guard = on;" "SET statement_timeout = '300ms';" \
    "SELECT coupon_lock.coupon_issue($c, 'ann');" "RESET statement_timeout;" \
    "\\! kill -CONT \$(cat $REAL_PIDFILE); sleep 0.5" "SET coupon_lock.redis_guard_wait = 0;" \
    "SELECT coupon_lock.coupon_issue($c, 'ann') AS version;")
pv_check "a guarded transition cut off while Redis is paused leaves no guard key behind" \
    test "$(real EXISTS "$gkey")" = 0 || echo "$out"
pv_check "the coupon's next guarded transition goes through at once" grep -qx 2 <<<"$out" || echo "$out"

# ---- items 8 and 22: a stalled Redis holds COMMIT for a bounded time ----
out=$(q "$REAL_PORT" "SET coupon_lock.redis_command_timeout = '1h';" "BEGIN;" \
    "SELECT coupon_lock.redis_xact_lock('stalled-commit', '60s') IS NOT NULL AS locked;" \
    "\\! kill -STOP \$(cat $REAL_PIDFILE)" "COMMIT;" "SELECT 'committed';")
resume_real
pv_check "COMMIT with a stalled Redis and redis_command_timeout = 1h ends (capped at the commit path)" \
    grep -qx committed <<<"$out" || echo "$out"
pv_check "its WARNING says the release was sent but not confirmed, not that the keys expire by TTL" \
    grep -q 'could not confirm the release of 1 Redis lock at transaction end' <<<"$out" || echo "$out"

# ---- item 7: no reconnect in the abort callback; PRE_COMMIT reconnects ----
conns() { real INFO stats | tr -d '\r' | sed -n 's/^total_connections_received://p'; }
out=$(q "$REAL_PORT" "BEGIN;" "SELECT coupon_lock.redis_xact_lock('abort-after-kill', '60s') IS NOT NULL AS locked;" \
    "\\! redis-cli -p $REAL_PORT CLIENT KILL TYPE normal >/dev/null; redis-cli -p $REAL_PORT INFO stats | tr -d '\\r' | sed -n 's/^total_connections_received://p' >$PV_TMP/faults_conns" \
    "ROLLBACK;" "\\! redis-cli -p $REAL_PORT INFO stats | tr -d '\\r' | sed -n 's/^total_connections_received://p' >>$PV_TMP/faults_conns" \
    "SELECT coupon_lock.redis_lock('after-abort', '60s') IS NOT NULL AS next_call_works;")
before=$(sed -n 1p "$PV_TMP/faults_conns"); after=$(sed -n 2p "$PV_TMP/faults_conns")
pv_check "the abort callback does not reconnect to a Redis that closed the connection" \
    test "$((after - before))" -eq 1 || echo "connections: $before -> $after (one is redis-cli's own); $out"
pv_check "it says so, and the key is deleted by the next command" \
    bash -c 'grep -q "could not release 1 Redis lock at transaction end" <<<"$1" && test "$(redis-cli -p "$2" EXISTS coupon_lock:abort-after-kill)" = 0' _ "$out" "$REAL_PORT" ||
    echo "$out"
out=$(q "$REAL_PORT" "BEGIN;" "SELECT coupon_lock.redis_xact_lock('commit-after-kill', '60s') IS NOT NULL AS locked;" \
    "\\! redis-cli -p $REAL_PORT CLIENT KILL TYPE normal >/dev/null" "COMMIT;")
pv_check "a commit after Redis closed the connection reconnects at PRE_COMMIT and releases" \
    bash -c '! grep -q WARNING <<<"$1" && test "$(redis-cli -p "$2" EXISTS coupon_lock:commit-after-kill)" = 0' _ "$out" "$REAL_PORT" ||
    echo "$out"

# ---- item 10: two databases sharing one Redis do not share coupon guards ----
for db in cl_faults_a cl_faults_b; do
    "$CL_PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
    PV_DB=$db pv_psql -c "CREATE EXTENSION coupon_lock" -c "SELECT coupon_lock.create_batch('same ids', 1, 1)" >/dev/null
done
PV_DB=cl_faults_a q "$REAL_PORT" "SET coupon_lock.redis_guard = on;" "BEGIN;" \
    "SELECT coupon_lock.coupon_issue(1, 'in-a');" "SELECT pg_sleep(3);" "COMMIT;" >/dev/null &
holder=$!
sleep 1
out=$(PV_DB=cl_faults_b q "$REAL_PORT" "SET coupon_lock.redis_guard = on;" "SET coupon_lock.redis_guard_wait = 0;" \
    "SELECT coupon_lock.coupon_issue(1, 'in-b') AS version;")
wait "$holder"
pv_check "coupon 1 of database b is not held up by the guard of coupon 1 of database a" \
    grep -qx 2 <<<"$out" || echo "$out"
for db in cl_faults_a cl_faults_b; do "$CL_PGBIN/psql" -X -q -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1; done

pv_done redis_faults
