#!/usr/bin/env bash
# A coupon_lock advisory lock is freed when its holder's backend is
# terminated: a session holds a key and idles, another terminates it with
# pg_terminate_backend and then gets the key (a wait with a timeout, so a
# lock that stayed would fail the test instead of hanging it).
set -eu
. "$(dirname "$0")/../lib.sh"

DB=cl_shell_locks
psql_q() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

"$CL_PGBIN/psql" -X -q -At -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
trap '"$CL_PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB (FORCE)" >/dev/null 2>&1 || true' EXIT
psql_q -c "CREATE EXTENSION coupon_lock"

# The holder: takes the key, says so, then idles until it is terminated.
fifo=$(mktemp -u)
mkfifo "$fifo"
( { echo "SELECT coupon_lock.advisory_lock('shell:terminate');"; echo "SELECT pg_sleep(60);"; } |
    "$CL_PGBIN/psql" -X -q -At -d "$DB" >"$fifo" 2>/dev/null || true ) &
holder_job=$!
read -r took <"$fifo" || true
rm -f "$fifo"
[ "$took" = t ] || cl_die "the holder did not get the lock (got '$took')"

holder_pid=$(psql_q -c "SELECT pid FROM coupon_lock.advisory_locks
                          WHERE lock_id = coupon_lock.advisory_lock_id('shell:terminate') AND granted")
[ -n "$holder_pid" ] || cl_die "the view does not show the holder"
echo "holder backend: $holder_pid"

busy=$(psql_q -c "SELECT coupon_lock.advisory_lock('shell:terminate', '0')")
[ "$busy" = f ] || cl_die "the key was free while held (got '$busy')"

psql_q -c "SELECT pg_terminate_backend($holder_pid, 10000)" >/dev/null
wait "$holder_job" || true

got=$(psql_q -c "SELECT coupon_lock.advisory_lock('shell:terminate', '10 seconds')")
[ "$got" = t ] || cl_die "the key stayed locked after its holder was terminated (got '$got')"
left=$(psql_q -c "SELECT count(*) FROM coupon_lock.advisory_locks WHERE pid = $holder_pid")
[ "$left" = 0 ] || cl_die "the terminated backend still shows $left locks"
echo "ok: lock freed when its holder was terminated"
