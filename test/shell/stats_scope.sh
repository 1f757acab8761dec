#!/usr/bin/env bash
# lock_stats scope: 'shared' with coupon_lock preloaded (counts of all
# backends), 'backend' without (each backend counts its own calls only).
# Restarts the test cluster once without shared_preload_libraries and puts
# it back as it was.
set -eu
. "$(dirname "$0")/../lib.sh"

DB=cl_shell_stats
PGDATA_DIR="$CL_ROOT/tmp/test/pg"
LOG="$CL_ROOT/tmp/test/postgresql.log"
psql_q() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
expect() { [ "$2" = "$3" ] || cl_die "$1: expected '$3', got '$2'"; }
pg_stop() { cl_as_owner "$CL_PGBIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null; }
pg_start() { cl_as_owner "$CL_PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$LOG" -w -t 60 start "$@" >/dev/null; }
stats="SELECT acquired || '/' || released || '/' || scope FROM coupon_lock.lock_stats WHERE kind = 'advisory'"
one_cycle="SELECT coupon_lock.advisory_lock('stats'), coupon_lock.advisory_unlock('stats')"

[ -f "$PGDATA_DIR/postmaster.pid" ] || cl_die "no test cluster running in $PGDATA_DIR"
"$CL_PGBIN/psql" -X -q -At -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
cleanup() {
    # whatever happened, leave the cluster running with its own settings
    if ! "$CL_PGBIN/psql" -X -At -d postgres -c "SHOW shared_preload_libraries" 2>/dev/null | grep -q coupon_lock; then
        pg_stop || true
        pg_start || true
    fi
    "$CL_PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql_q -c "CREATE EXTENSION coupon_lock"

# Preloaded: one backend's calls show in another's reading.
psql_q -c "SELECT coupon_lock.lock_stats_reset()" >/dev/null
psql_q -c "$one_cycle" >/dev/null
expect "shared counters" "$(psql_q -c "$stats")" "1/1/shared"

cl_log "restarting the test cluster without shared_preload_libraries"
pg_stop
pg_start -o "-c shared_preload_libraries="
expect "backend counters, own calls" "$(psql_q -c "$one_cycle" -c "$stats" | tail -n 1)" "1/1/backend"
expect "backend counters, another backend" "$(psql_q -c "$stats")" "0/0/backend"

pg_stop
pg_start
expect "preloaded again" "$(psql_q -c "SELECT scope FROM coupon_lock.lock_stats WHERE kind = 'lease'")" "shared"
echo "ok: lock_stats scope shared when preloaded, backend otherwise"
