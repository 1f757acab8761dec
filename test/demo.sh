#!/usr/bin/env bash
# Sets everything up on a fresh Debian machine and shows coupon_lock at work:
# installs what is missing, builds, installs, starts a throwaway PostgreSQL 15
# and Redis under tmp/demo (left running), creates the extension, runs a demo.
set -eu
# test/demo.sh shards: the router and four shards instead (test/shards/demo.sh)
[ "${1:-}" = shards ] && exec bash "$(dirname "$0")/shards/demo.sh"
. "$(dirname "$0")/lib.sh"
cd "$CL_ROOT"

PGPORT=${CL_DEMO_PGPORT:-54871}
REDIS_PORT=${CL_DEMO_REDIS_PORT:-6479}

cl_install_packages
cl_build_install yes
cl_pg_start demo "$PGPORT"
cl_redis_start demo "$REDIS_PORT"

psql_demo() { psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres "$@"; }
# a throwaway database: the demo starts from a fresh copy of the extension each run
psql_demo -c "DROP EXTENSION IF EXISTS coupon_lock CASCADE" -c "CREATE EXTENSION coupon_lock"
cl_configure_redis "$PGPORT" "$REDIS_PORT"

cat <<'TXT'

================ coupon_lock demo ================
A batch of 3 coupons, at most 1 per customer.  Every call below is one atomic
SQL call; each returns the coupon's new version.
TXT

psql_demo -v ON_ERROR_STOP=0 <<'SQL'
\set VERBOSITY default
\set SHOW_CONTEXT never
\pset footer off
SELECT coupon_lock.create_batch('demo: 10% off', 3, 1, NULL, '15 minutes') AS batch \gset
\echo
\echo '1. alice claims a coupon of the batch (available -> issued):'
SELECT coupon_lock.coupon_claim(:batch, 'alice') AS coupon \gset
SELECT coupon_id, code, state, owner_id, version FROM coupon_lock.coupon WHERE coupon_id = :coupon;
\echo '   a second claim by alice breaks the per-user limit:'
SELECT coupon_lock.coupon_claim(:batch, 'alice');
\echo
\echo '2. checkout: alice freezes it for order 1001 (issued -> frozen, held 15 minutes):'
SELECT coupon_lock.coupon_freeze(:coupon, 'alice', 'order-1001') AS version;
\echo
\echo '3. a lost race: two app servers both read version 3; server B unfreezes first,'
\echo '   server A then redeems with the version it read and gets SQLSTATE 40001:'
SELECT coupon_lock.coupon_unfreeze(:coupon, 'order-1001', 3) AS "server B: unfreeze -> version";
\set VERBOSITY verbose
SELECT coupon_lock.coupon_redeem(:coupon, 'order-1001', 3) AS "server A: redeem";
\set VERBOSITY default
\echo
\echo '4. order 1002 freezes the coupon again, and a retry of the same call is idempotent:'
SELECT coupon_lock.coupon_freeze(:coupon, 'alice', 'order-1002') AS version;
SELECT coupon_lock.coupon_freeze(:coupon, 'alice', 'order-1002') AS "retry: same version";
\echo
\echo '5. a late unfreeze for the old order 1001 cannot touch it:'
SELECT coupon_lock.coupon_unfreeze(:coupon, 'order-1001');
\echo
\echo '6. payment done: redeem for order 1002 (frozen -> redeemed); a second redeem is a no-op:'
SELECT coupon_lock.coupon_redeem(:coupon, 'order-1002') AS version;
SELECT coupon_lock.coupon_redeem(:coupon, 'order-1002') AS "retry: same version";
\echo
\echo 'The ledger: one row per transition.'
SELECT op, from_state, to_state, version, owner_id, order_id FROM coupon_lock.coupon_event
 WHERE coupon_id = :coupon ORDER BY event_id;
\echo
\echo '7. locks around it: an advisory lock by text key (waits at most 100 ms, false if it'
\echo '   cannot have it), and a Redis lock that a process outside the database sees:'
SELECT coupon_lock.advisory_lock('nightly-report', '100 milliseconds') AS advisory_taken;
SELECT coupon_lock.redis_lock('report', '30 seconds') AS token \gset
\echo '   token:' :token
SQL
printf '   redis-cli GET coupon_lock:report -> %s\n' "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" GET coupon_lock:report)"
psql_demo -Atc "SELECT coupon_lock.redis_unlock('report', (SELECT '$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" GET coupon_lock:report)'))" |
    sed 's/^/   redis_unlock with that token -> /'

cat <<TXT
==================================================
PostgreSQL is still running (data in tmp/demo/pg, log tmp/demo/postgresql.log).
  connect:  psql -h 127.0.0.1 -p $PGPORT -U postgres
  stop:     test/stop.sh demo   (stops this PostgreSQL and the Redis on port $REDIS_PORT)
TXT
