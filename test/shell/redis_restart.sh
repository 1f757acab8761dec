#!/usr/bin/env bash
# Redis stopped, hung and started again under one database session.  Runs a
# redis-server of its own (with a password) on CL_REDIS_EXTRA_PORT, default
# CL_REDIS_PORT + 1, so the suite's shared Redis is never stopped.  Checks:
# AUTH on connect; Redis down gives a class 08 error and leaves a guarded
# coupon untouched; the same session works again once Redis is back, with
# no reconnect by hand and with the script cache gone (NOSCRIPT); a hung
# Redis gives 08006 after the command timeout and 08001 after the connect
# timeout; statement_timeout interrupts a wait on a hung Redis; a commit
# whose locks cannot be released still commits, with a WARNING; a wrong
# password is 08001 and never shown; SELECT of redis_db.  No duration is
# asserted: the timeouts only have to end each wait.
set -eu
. "$(dirname "$0")/../lib.sh"

NAME=redis_restart
PORT=${CL_REDIS_EXTRA_PORT:-$((CL_REDIS_PORT + 1))}
PASS='pw with spaces'
PIDFILE="$CL_ROOT/tmp/$NAME/redis.pid"
export NAME PORT PASS PIDFILE

start() { cl_redis_start "$NAME" "$PORT" --requirepass "$PASS"; }
resume() { [ -f "$PIDFILE" ] && kill -CONT "$(cat "$PIDFILE")" 2>/dev/null || true; }
trap 'resume; cl_redis_stop "$NAME"' EXIT
export CL_ROOT
start

script=$(cat <<SQL
CREATE EXTENSION coupon_lock;
SET search_path = coupon_lock, public;
SET coupon_lock.redis_port = $PORT;
SET coupon_lock.redis_password = '$PASS';
SET coupon_lock.redis_connect_timeout = '2s';
SET coupon_lock.redis_command_timeout = '2s';
CREATE FUNCTION pg_temp.sqlstate(q text) RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN query_canceled OR OTHERS THEN
    RETURN SQLSTATE;
END \$\$;
CREATE FUNCTION pg_temp.errtext(q text) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', m, d, h);
END \$\$;
CREATE FUNCTION pg_temp.check(name text, ok boolean) RETURNS text LANGUAGE sql
    AS \$\$ SELECT CASE WHEN ok THEN 'ok ' ELSE 'FAIL ' END || name \$\$;
SELECT pg_backend_pid() AS pid \gset

SELECT pg_temp.check('connected with AUTH', redis_lock('r1', '60s') IS NOT NULL);
SELECT redis_lock('r2', '60s') AS tok \gset
SELECT pg_temp.check('unlock via EVALSHA', redis_unlock('r2', :'tok'));
SELECT create_batch('restart', 1, 1) AS b \gset
SELECT first_coupon_id AS c FROM batch WHERE batch_id = :b \gset
SET coupon_lock.redis_guard = on;
SELECT pg_temp.check('guarded issue', coupon_issue(:c, 'alice') = 2);

-- Redis stopped mid-session
\! bash -c '. "\$CL_ROOT/test/lib.sh"; cl_redis_stop "\$NAME"'
SELECT pg_temp.check('down: lock is class 08', pg_temp.sqlstate(\$\$SELECT coupon_lock.redis_lock('r3', '60s')\$\$) LIKE '08%');
SELECT pg_temp.check('down: guarded freeze is class 08',
    pg_temp.sqlstate(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L)', :c, 'alice', 'o1')) LIKE '08%');
SELECT pg_temp.check('down: coupon untouched', state = 'issued' AND version = 2) FROM coupon WHERE coupon_id = :c;
SELECT pg_temp.check('down: no advisory lock left',
    count(*) = 0) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- started again: the same session works, and the empty script cache is refilled
\! bash -c '. "\$CL_ROOT/test/lib.sh"; cl_redis_start "\$NAME" "\$PORT" --requirepass "\$PASS"'
SELECT redis_lock('r4', '60s') AS tok \gset
SELECT pg_temp.check('back: lock works in the same session', :'tok' IS NOT NULL AND pg_backend_pid() = :pid);
SELECT pg_temp.check('back: unlock after NOSCRIPT', redis_unlock('r4', :'tok'));
SELECT pg_temp.check('back: guarded freeze', coupon_freeze(:c, 'alice', 'o1') = 3);

-- Redis hung (SIGSTOP): the command timeout ends the wait with 08006
\! kill -STOP "\$(cat "\$PIDFILE")"
SET coupon_lock.redis_command_timeout = '300ms';
SELECT pg_temp.check('hung: command timeout is 08006', pg_temp.sqlstate(\$\$SELECT coupon_lock.redis_lock('r5', '60s')\$\$) = '08006');
-- the connection was dropped: reconnecting (AUTH gets no answer) ends with 08001
SET coupon_lock.redis_connect_timeout = '300ms';
SELECT pg_temp.check('hung: connect timeout is 08001', pg_temp.sqlstate(\$\$SELECT coupon_lock.redis_lock('r5', '60s')\$\$) = '08001');
-- statement_timeout interrupts a wait that the Redis timeouts would not end soon
SET coupon_lock.redis_connect_timeout = '60s';
SET statement_timeout = '300ms';
SELECT pg_temp.check('hung: statement_timeout cancels', pg_temp.sqlstate(\$\$SELECT coupon_lock.redis_lock('r5', '60s')\$\$) = '57014');
RESET statement_timeout;
\! kill -CONT "\$(cat "\$PIDFILE")"
SET coupon_lock.redis_connect_timeout = '2s';
SET coupon_lock.redis_command_timeout = '2s';
SELECT pg_temp.check('resumed: lock works', redis_lock('r6', '60s') IS NOT NULL);

-- a commit whose Redis locks cannot be released commits anyway, with a WARNING
BEGIN;
SELECT pg_temp.check('xact lock before stop', redis_xact_lock('r7', '60s') IS NOT NULL);
SELECT create_batch('committed', 1, 1) AS cb \gset
\! bash -c '. "\$CL_ROOT/test/lib.sh"; cl_redis_stop "\$NAME"'
COMMIT;
\! bash -c '. "\$CL_ROOT/test/lib.sh"; cl_redis_start "\$NAME" "\$PORT" --requirepass "\$PASS"'
SELECT pg_temp.check('commit went through', count(*) = 1) FROM batch WHERE batch_id = :cb;

-- a wrong password: 08001, and the password never shown
SET coupon_lock.redis_password = 'wrong secret';
SELECT pg_temp.check('wrong password is 08001', pg_temp.sqlstate(\$\$SELECT coupon_lock.redis_lock('r8', '60s')\$\$) = '08001');
SELECT pg_temp.check('password not shown',
    pg_temp.errtext(\$\$SELECT coupon_lock.redis_lock('r8', '60s')\$\$) NOT LIKE '%secret%');
SET coupon_lock.redis_password = '$PASS';

-- redis_db is selected on connect
SET coupon_lock.redis_db = 3;
SELECT pg_temp.check('lock in db 3', redis_lock('in-db-3', '60s') IS NOT NULL);
SQL
)
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS cl_redis_restart" -c "CREATE DATABASE cl_redis_restart"
out=$(psql -X -At -v ON_ERROR_STOP=0 -d cl_redis_restart 2>&1 <<<"$script")
checks=$(grep -c "pg_temp.check('" <<<"$script")
printf '%s\n' "$out"
exists=$(redis-cli -p "$PORT" -a "$PASS" --no-auth-warning -n 3 EXISTS coupon_lock:in-db-3)

fail=0
grep -q '^FAIL' <<<"$out" && fail=1
[ "$(grep -c '^ok ' <<<"$out")" -eq "$checks" ] || { echo "expected $checks checks to pass"; fail=1; }
grep -q 'WARNING:  could not release 1 Redis lock at transaction end' <<<"$out" ||
    { echo "no WARNING for the locks a commit could not release"; fail=1; }
[ "$exists" = 1 ] || { echo "the lock taken with redis_db = 3 is not in database 3"; fail=1; }
exit $fail
