#!/usr/bin/env bash
# Fencing tokens keep rising across a server restart: the counter lives in
# the durable lease row.  Grants before the restart get counters 1 and 2 (low 32 bits); the holder
# of 2 keeps its lease through the restart (same token on re-acquire), and
# the first grant after its release gets 3.
set -eu
. "$(dirname "$0")/../lib.sh"

DB=cl_shell_leases
PGDATA_DIR="$CL_ROOT/tmp/test/pg"
psql_q() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
expect() { [ "$2" = "$3" ] || cl_die "$1: expected '$3', got '$2'"; }

[ -f "$PGDATA_DIR/postmaster.pid" ] || cl_die "no test cluster running in $PGDATA_DIR"

"$CL_PGBIN/psql" -X -q -At -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
trap '"$CL_PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB (FORCE)" >/dev/null 2>&1 || true' EXIT
psql_q -c "CREATE EXTENSION coupon_lock"

# tokens carry the timeline in their high 32 bits (src/epoch.c): counters
# are compared, $EPOCH is the first token of the timeline minus 1
EPOCH="(SELECT timeline_id::bigint << 32 FROM pg_control_checkpoint())"
expect "first grant" "$(psql_q -c "SELECT coupon_lock.lease_acquire('nightly', 'w1', '1 hour') - $EPOCH")" 1
expect "release" "$(psql_q -c "SELECT coupon_lock.lease_release('nightly', 'w1')")" t
expect "second grant" "$(psql_q -c "SELECT coupon_lock.lease_acquire('nightly', 'w2', '1 hour') - $EPOCH")" 2

cl_log "restarting the test cluster"
# stop + start rather than restart: start takes its settings from the data
# directory, restart would reuse any one-off options of the last start.
cl_as_owner "$CL_PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
cl_as_owner "$CL_PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$CL_ROOT/tmp/test/postgresql.log" -w -t 60 start >/dev/null

expect "lease alive after restart" "$(psql_q -c "SELECT coupon_lock.lease_check('nightly', $EPOCH + 2)")" t
expect "other holder refused" "$(psql_q -c "SELECT coupon_lock.lease_acquire('nightly', 'w1', '1 hour') IS NULL")" t
expect "holder keeps its token" "$(psql_q -c "SELECT coupon_lock.lease_acquire('nightly', 'w2', '1 hour') - $EPOCH")" 2
expect "release" "$(psql_q -c "SELECT coupon_lock.lease_release('nightly', 'w2')")" t
expect "next grant after restart" "$(psql_q -c "SELECT coupon_lock.lease_acquire('nightly', 'w1', '1 hour') - $EPOCH")" 3
echo "ok: fencing tokens 1, 2, 3 across a restart"
