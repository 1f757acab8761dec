#!/usr/bin/env bash
# Security: privileges (PUBLIC, a role without grants, the application role
# of the recipe in docs/testing.md), planted functions and operators on the
# caller's search_path (test/prove/security.sql), the Redis password hidden
# from non-superusers (once coupon_lock.redis_password exists), and a review
# of the C code for SQL built from caller input (test/prove/sql_review.py).
set -u
. "$(dirname "$0")/common.sh"
PV_DB=prove_security

pv_fresh_db || { pv_fail "could not create $PV_DB"; pv_done security; exit 1; }
# Roles are cluster-wide; an earlier run's held grants only in the database
# pv_fresh_db just dropped.
"$CL_PGBIN/psql" -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS prove_nobody, prove_app, prove_evil" >/dev/null
if out=$(pv_psql -f "$PV_DIR/security.sql" 2>&1); then
    pv_sql_checks /dev/stdin <<<"SELECT name, ok, detail FROM prove_sec.result ORDER BY n"
else
    pv_fail "security.sql did not run: $out"
fi

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
