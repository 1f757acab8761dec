#!/usr/bin/env bash
# Security: privileges (PUBLIC, a role without grants, the roles of the
# privilege split: application, admin, monitor), the advisory key ceiling
# against a role flooding the shared lock table (security_locks.sh), planted functions and operators on the
# caller's search_path (test/prove/security.sql), the Redis password hidden
# from non-superusers (once coupon_lock.redis_password exists), and a review
# of the C code for SQL built from caller input (test/prove/sql_review.py).
set -u
. "$(dirname "$0")/common.sh"
PV_DB=prove_security

pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done security; exit 1; }
# Roles are cluster-wide; an earlier run's held grants only in the database
# pv_fresh_db just dropped.
"$CL_PGBIN/psql" -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS prove_nobody, prove_app, prove_admin, prove_monitor, prove_evil" >/dev/null
if out=$(pv_psql -f "$PV_DIR/security.sql" 2>&1); then
    pv_sql_checks /dev/stdin <<<"SELECT name, ok, detail FROM prove_sec.result ORDER BY n"
else
    pv_fail "security.sql did not run: $out"
fi

# The roles are the cluster's: a second database's CREATE EXTENSION finds
# them and grants them its own objects; DROP EXTENSION takes those grants
# with the objects and leaves the roles, and the schema's USAGE grants with
# the schema (DROP SCHEMA coupon_lock then frees the roles).
DB2=${PV_DB}_second
db2() { "$CL_PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB2" "$@"; }
"$CL_PGBIN/psql" -X -q -d postgres -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $DB2 WITH (FORCE)" -c "CREATE DATABASE $DB2" >/dev/null
got=$(db2 2>&1 <<'SQL'
CREATE EXTENSION coupon_lock;
SET ROLE prove_admin;
SELECT coupon_lock.create_batch('second', 2) AS b \gset
SET ROLE prove_app;
SELECT coupon_lock.coupon_claim(:b, 'second-owner') IS NOT NULL;
RESET ROLE;
DROP EXTENSION coupon_lock;
SELECT count(*) FROM pg_roles WHERE rolname LIKE 'coupon\_lock\_%';
-- what of this database still names the roles: only the USAGE on the schema,
-- which DROP EXTENSION leaves (PostgreSQL keeps an extension's schema)
SELECT string_agg(DISTINCT d.classid::regclass::text, ',') FROM pg_shdepend d
  JOIN pg_database db ON db.oid = d.dbid
 WHERE db.datname = current_database() AND d.refobjid IN
       (SELECT oid FROM pg_roles WHERE rolname LIKE 'coupon\_lock\_%');
DROP SCHEMA coupon_lock;
CREATE EXTENSION coupon_lock;
SELECT bool_and(has_function_privilege('coupon_lock_application', oid, 'EXECUTE'))
  FROM pg_proc WHERE proname = 'coupon_claim' AND pronamespace = 'coupon_lock'::regnamespace;
SQL
)
pv_check "a second database's CREATE EXTENSION uses the roles; DROP EXTENSION leaves them and only the schema's grants; CREATE again" \
    test "$(tr '\n' ' ' <<<"$got")" = "t 3 pg_namespace t " || echo "$got"
"$CL_PGBIN/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB2 WITH (FORCE)" >/dev/null

. "$PV_DIR/security_locks.sh"
. "$PV_DIR/security_redis.sh"

# The review can fail: a sample with pasted input must be flagged.
cat >"$PV_TMP/sql_review_sample.c" <<'C'
static SpiPlan bad_plan = {"SELECT " CppAsString(x), 0, {0}};
void f(char *owner) { char *q = psprintf("SELECT 1 WHERE o = '%s'", owner); SPI_execute(q, false, 0); }
void g(char *key) { SPI_exec(key, 0); redisCommand(c, key); ereport(ERROR, (errmsg(key))); }
C
flagged=$(python3 "$PV_DIR/sql_review.py" "$PV_TMP/sql_review_sample.c" | grep -c FAILED)
pv_check "sql_review.py flags SQL, Redis commands and formats built from input ($flagged of 5 flagged)" \
    test "$flagged" -eq 5
if python3 "$PV_DIR/sql_review.py" "$CL_ROOT"/src/*.c; then
    pv_ok "no SQL in src/*.c is built from caller input (sql_review.py)"
else
    pv_fail "sql_review.py found SQL or Redis commands built from input"
fi
pv_done security
