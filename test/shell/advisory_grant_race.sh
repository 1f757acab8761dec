#!/usr/bin/env bash
# A timed advisory wait whose timeout fires in the same instant as the grant
# (issue 10, item 11).  The race is made certain rather than hoped for: the
# waiter's backend is stopped (SIGSTOP) while it waits, the holder lets go,
# so the lock manager grants the lock to the stopped waiter, and the waiter
# is resumed (SIGCONT) only after its timeout has passed.  It then sees the
# lock_timeout error and the grant together.
#
#   session scope: PostgreSQL 15's LockErrorCleanup keeps the granted lock
#     (a session lock belongs to no resource owner), so the call must answer
#     true and the lock be held; "false while holding" is the defect.
#   transaction scope: the grant goes to the internal subtransaction's
#     resource owner and is released with it: false, nothing held, and the
#     lock passes on to the next waiter.
#   cancel (with a timeout and without): a query cancel that races the
#     grant is an error, and an error must leave nothing held.
set -eu
. "$(dirname "$0")/../lib.sh"

DB=cl_shell_grant_race
W=$CL_ROOT/tmp/test/grant_race
psql_q() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

"$CL_PGBIN/psql" -X -q -At -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
rm -rf "$W"; mkdir -p "$W"
cleanup() {
    [ -n "${waiter_pid:-}" ] && kill -CONT "$waiter_pid" 2>/dev/null
    exec 3>&-
    "$CL_PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql_q -c "CREATE EXTENSION coupon_lock"

failures=0
fail() { echo "FAILED: $*"; failures=$((failures + 1)); }

# wait_for SQL: polls until the query answers t (at most 20 s).
wait_for() {
    local i
    for i in $(seq 200); do
        [ "$(psql_q -c "$1")" = t ] && return 0
        sleep 0.1
    done
    cl_die "timed out waiting for: $1"
}

# race NAME LOCK_CALL CANCEL: the holder (fd 3) takes key "race:NAME"; the
# waiter runs LOCK_CALL (a timed wait of 2 s), then reports what it holds.
# While the waiter waits its backend is stopped, the holder unlocks, and
# (CANCEL = yes) the waiter is also sent a query cancel; after the timeout
# has passed (CANCEL = yes: at once) the waiter is resumed.  Prints the waiter's output lines.
race() {
    local name=$1 call=$2 cancel=$3 key="race:$1" i
    mkfifo "$W/$name.holder"
    "$CL_PGBIN/psql" -X -q -At -d "$DB" <"$W/$name.holder" >"$W/$name.holder.out" 2>&1 &
    exec 3>"$W/$name.holder"
    echo "SELECT coupon_lock.advisory_lock('$key');" >&3
    wait_for "SELECT count(*) = 1 FROM coupon_lock.advisory_locks
               WHERE lock_id = coupon_lock.advisory_lock_id('$key') AND granted"

    "$CL_PGBIN/psql" -X -q -At -d "$DB" >"$W/$name.waiter.out" 2>&1 <<SQL &
SET application_name = 'grant_race_waiter';
BEGIN;
SELECT 'call|' || $call;
SELECT 'held|' || count(*) FROM coupon_lock.advisory_locks WHERE pid = pg_backend_pid() AND granted;
SELECT 'key|' || coalesce(coupon_lock.advisory_lock_key(coupon_lock.advisory_lock_id('$key')), 'NULL');
COMMIT;
SELECT 'after_commit|' || count(*) FROM coupon_lock.advisory_locks WHERE pid = pg_backend_pid() AND granted;
SQL
    local psql_job=$!
    wait_for "SELECT count(*) = 1 FROM coupon_lock.advisory_locks
               WHERE lock_id = coupon_lock.advisory_lock_id('$key') AND NOT granted"
    waiter_pid=$(psql_q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'grant_race_waiter'")
    kill -STOP "$waiter_pid"
    echo "SELECT coupon_lock.advisory_unlock('$key');" >&3
    # The lock manager grants the lock to the stopped waiter.
    wait_for "SELECT count(*) = 1 FROM coupon_lock.advisory_locks
               WHERE lock_id = coupon_lock.advisory_lock_id('$key') AND granted AND pid = $waiter_pid"
    if [ "$cancel" = yes ]; then
        # Resumed well before its timeout: the cancel is all it sees.
        psql_q -c "SELECT pg_cancel_backend($waiter_pid)" >/dev/null
        sleep 0.2
    else
        sleep 3   # past the waiter's 2 s timeout (and deadlock_timeout)
    fi
    kill -CONT "$waiter_pid"
    waiter_pid=
    wait "$psql_job" || true
    exec 3>&-
    wait || true
    rm -f "$W/$name.holder"
    # What is left on the key once the waiter's session has ended.
    echo "left|$(psql_q -c "SELECT count(*) FROM coupon_lock.advisory_locks
                             WHERE lock_id = coupon_lock.advisory_lock_id('$key')")"
    cat "$W/$name.waiter.out"
}

# expect NAME OUTPUT LINE...: each LINE must be in OUTPUT.
expect() {
    local name=$1 out=$2 line; shift 2
    for line in "$@"; do
        grep -qxF -- "$line" <<<"$out" || fail "$name: expected '$line' in: $(tr '\n' ' ' <<<"$out")"
    done
}

for round in 1 2; do
    out=$(race "session$round" "coupon_lock.advisory_lock('race:session$round', '2 seconds')" no)
    echo "$out" | sed "s/^/session $round: /"
    # Held after the race, so the call must have said true; the session lock
    # outlives the commit until the session ends.
    expect "session round $round" "$out" "call|true" "held|1" "key|race:session$round" "after_commit|1" "left|0"

    out=$(race "xact$round" "coupon_lock.advisory_xact_lock('race:xact$round', '2 seconds')" no)
    echo "$out" | sed "s/^/xact $round: /"
    expect "xact round $round" "$out" "call|false" "held|0" "key|NULL" "after_commit|0" "left|0"
done

out=$(race cancel "coupon_lock.advisory_lock('race:cancel', '60 seconds')" yes)
echo "$out" | sed "s/^/cancel: /"
# The cancel aborts the transaction; the error must leave no lock behind.
expect cancel "$out" "after_commit|0" "left|0"
grep -q "canceling statement due to user request" <<<"$out" || fail "cancel: the waiter saw no cancel: $out"

out=$(race cancel_nolimit "coupon_lock.advisory_lock('race:cancel_nolimit')" yes)
echo "$out" | sed "s/^/cancel, no timeout: /"
expect "cancel, no timeout" "$out" "after_commit|0" "left|0"
grep -q "canceling statement due to user request" <<<"$out" || fail "cancel, no timeout: the waiter saw no cancel: $out"

[ "$failures" -eq 0 ] || exit 1
echo "ok: timed waits racing their grant"
