-- Redis locks against the suite's redis-server: test/test.sh points
-- coupon_lock.redis_host and redis_port at it (ALTER SYSTEM) and exports
-- CL_REDIS_PORT for redis-cli.  The same file runs against the build without
-- hiredis (expected/redis_1.out): CL_EXPECT_BUILD names the build the runner
-- expects, so neither build can pass with the other's output.
\set build unknown
\getenv build CL_EXPECT_BUILD
SELECT :'build' AS build;
SET search_path = coupon_lock, public;
\! redis-cli -p "$CL_REDIS_PORT" FLUSHDB
-- SQLSTATE and message of a statement's error, numbers masked.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ' ' || regexp_replace(SQLERRM, '\d+', 'N', 'g');
END $$;
-- Message, detail and hint of a statement's error.
CREATE FUNCTION pg_temp.err_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    m text; d text; h text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', m, d, h);
END $$;

SELECT :'build' = 'nohiredis' AS nohiredis \gset
\if :nohiredis
-- Built without hiredis: every Redis function exists and raises 0A000,
-- whatever its arguments, and so does the guard while Redis is configured.
-- The settings exist, so configuration files stay valid.
SELECT pg_temp.err($$SELECT redis_lock('k', '1s')$$);
SELECT pg_temp.err($$SELECT redis_lock(NULL, NULL)$$);
SELECT pg_temp.err($$SELECT redis_xact_lock('k', '1s', '1s')$$);
SELECT pg_temp.err($$SELECT redis_unlock('k', 'token')$$);
SELECT pg_temp.err($$SELECT redis_extend('k', 'token', '1s')$$);
SELECT pg_temp.err($$SELECT hybrid_xact_lock('k')$$);
SET coupon_lock.redis_guard = on;
SELECT pg_temp.err($$SELECT coupon_revoke(-1)$$);
RESET coupon_lock.redis_guard;
SELECT count(*) AS settings FROM pg_settings WHERE name LIKE 'coupon_lock.redis%';
-- With Redis not configured, hybrid_xact_lock is the advisory lock alone.
SET coupon_lock.redis_host = '';
BEGIN;
SELECT hybrid_xact_lock('alone', '60s', '0') AS advisory_held;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;
RESET coupon_lock.redis_host;
\! redis-cli -p "$CL_REDIS_PORT" DBSIZE
\quit
\endif

-- Bad input: NULL is 22004, out of range 22023.
SELECT pg_temp.err($$SELECT redis_lock(NULL, '1s')$$);
SELECT pg_temp.err($$SELECT redis_lock('', '1s')$$);
SELECT pg_temp.err($$SELECT redis_lock(repeat('k', 513), '1s')$$);
SELECT pg_temp.err($$SELECT redis_lock('k', NULL)$$);
SELECT pg_temp.err($$SELECT redis_lock('k', '0')$$);
SELECT pg_temp.err($$SELECT redis_lock('k', '-1 second')$$);
-- a NULL wait is no limit, as for every wait (args.c): taken at once here, and released
SELECT pg_temp.err($$SELECT redis_unlock('k', redis_lock('k', '1s', NULL))$$);
SELECT pg_temp.err($$SELECT redis_lock('k', '1s', '-1 second')$$);
SELECT pg_temp.err($$SELECT redis_xact_lock(NULL, '1s')$$);
SELECT pg_temp.err($$SELECT redis_xact_lock('k', '0')$$);
SELECT pg_temp.err($$SELECT redis_unlock('k', NULL)$$);
SELECT pg_temp.err($$SELECT redis_unlock('', 'token')$$);
SELECT pg_temp.err($$SELECT redis_extend('k', 'token', '0')$$);
SELECT pg_temp.err($$SELECT redis_extend('k', NULL, '1s')$$);
SELECT pg_temp.err($$SELECT hybrid_xact_lock('k', '1s', '-1 second')$$);
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:k

-- redis_lock: the Redis key is prefix||key, its value the token, its TTL the ttl.
SELECT redis_lock('a', '10s') AS tok \gset
SELECT :'tok' ~ '^[0-9a-f]{32}$' AS token_is_32_hex_digits;
\set val `redis-cli -p "$CL_REDIS_PORT" GET coupon_lock:a`
SELECT :'val' = :'tok' AS redis_holds_the_token;
\set pttl `redis-cli -p "$CL_REDIS_PORT" PTTL coupon_lock:a`
SELECT :pttl BETWEEN 1 AND 10000 AS ttl_within_10s;
SELECT redis_lock('a', '10s') IS NULL AS busy;
SELECT redis_lock('a', '10s', '50ms') IS NULL AS busy_after_a_wait;
SELECT redis_lock('b', '10s') <> :'tok' AS tokens_differ;

-- redis_extend and redis_unlock act only with the holder's token.
SELECT redis_extend('a', 'not-the-token', '100s') AS extended_by_stranger;
SELECT redis_extend('a', :'tok', '100s') AS extended;
\set pttl `redis-cli -p "$CL_REDIS_PORT" PTTL coupon_lock:a`
SELECT :pttl > 10000 AS ttl_now_longer;
SELECT redis_unlock('a', 'not-the-token') AS unlocked_by_stranger;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:a
SELECT redis_unlock('a', :'tok') AS unlocked;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:a
SELECT redis_unlock('a', :'tok') AS unlocked_again;
SELECT redis_extend('a', :'tok', '10s') AS extended_after_unlock;

-- An outside holder took the key with redis-cli.
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:outside their-token PX 60000
SELECT redis_lock('outside', '10s') IS NULL AS held_outside;
SELECT redis_lock('outside', '10s', '100ms') IS NULL AS still_held_after_a_wait;
SELECT redis_xact_lock('outside', '10s') IS NULL AS xact_lock_too;
SELECT redis_extend('outside', 'their-token', '60s') AS extended_their_lock;
SELECT redis_unlock('outside', 'their-token') AS released_their_lock;
SELECT redis_lock('outside', '10s') IS NOT NULL AS taken_after_their_release;
-- A wait outlasts an outside holder whose key expires.
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:brief their-token PX 200
SELECT redis_lock('brief', '10s', '30s') IS NOT NULL AS taken_after_their_expiry;
-- statement_timeout (like a query cancel) ends a wait at once.
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:long their-token PX 60000
SET statement_timeout = '200ms';
SELECT redis_lock('long', '10s', '1 hour');
SELECT hybrid_xact_lock('long', '10s', NULL);
RESET statement_timeout;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- redis_xact_lock: deleted at commit; reentrant within the transaction.
BEGIN;
SELECT redis_xact_lock('x', '60s') AS xtok \gset
SELECT redis_xact_lock('x', '60s') = :'xtok' AS same_token_again;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:x
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:x
-- at rollback
BEGIN;
SELECT redis_xact_lock('x', '60s') IS NOT NULL AS locked;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:x
ROLLBACK;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:x
-- at an error, before the ROLLBACK that ends the failed block
BEGIN;
SELECT redis_xact_lock('x', '60s') IS NOT NULL AS locked;
SELECT 1 / 0;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:x
ROLLBACK;
-- at the rollback of the subtransaction that took it
BEGIN;
SAVEPOINT s1;
SELECT redis_xact_lock('sub', '60s') IS NOT NULL AS locked_in_savepoint;
ROLLBACK TO s1;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:sub
SAVEPOINT s2;
SELECT redis_xact_lock('sub', '60s') IS NOT NULL AS locked_in_savepoint;
RELEASE s2;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:sub
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:sub
-- released by hand inside the transaction, then taken afresh
BEGIN;
SELECT redis_xact_lock('hand', '60s') AS htok \gset
SELECT redis_unlock('hand', :'htok') AS unlocked_by_hand;
SELECT redis_xact_lock('hand', '60s') <> :'htok' AS new_token;
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:hand
-- PREPARE TRANSACTION is refused while Redis locks are held.
BEGIN;
SELECT redis_xact_lock('prep', '60s') IS NOT NULL AS locked;
PREPARE TRANSACTION 'cl_redis';
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:prep

-- hybrid_xact_lock: the advisory lock and the Redis key, to the end of the transaction.
BEGIN;
SELECT hybrid_xact_lock('h', '60s', '0') AS both_held;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:h
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT hybrid_xact_lock('h', '60s', '0') AS again;
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:h
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
-- all or nothing: with the Redis key held outside, no advisory lock is left
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:h their-token PX 60000
BEGIN;
SELECT hybrid_xact_lock('h', '60s', '100ms') AS both_held;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" GET coupon_lock:h

-- Keys and tokens are bytes: spaces, quotes, CR/LF and long values reach
-- Redis unchanged and cannot add a command (the victim key survives).
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:victim v
SELECT redis_lock(E'a b\r\nDEL coupon_lock:victim\r\n', '60s') IS NOT NULL AS hostile_key_locked;
SELECT redis_lock(E'q''"\\', '60s') IS NOT NULL AS quoted_key_locked;
\! redis-cli -p "$CL_REDIS_PORT" --no-raw KEYS 'coupon_lock:[aq]*' | sed 's/^[0-9]*) //' | LC_ALL=C sort
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:victim
SELECT redis_lock(repeat('k', 512), '60s') IS NOT NULL AS long_key_locked;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "coupon_lock:$(printf 'k%.0s' $(seq 512))"
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:ht "$(printf 'a b\r\n"c')" PX 60000
SELECT redis_unlock('ht', E'a b\n"c') AS unlocked_without_cr;
SELECT redis_unlock('ht', E'a b\r\n"c') AS unlocked_byte_for_byte;
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:lt "$(printf 't%.0s' $(seq 512))" PX 60000
SELECT redis_unlock('lt', repeat('t', 511)) AS unlocked_with_a_prefix;
SELECT redis_unlock('lt', repeat('t', 512)) AS unlocked_with_the_long_token;

-- The password is superuser-only: hidden from SHOW and pg_settings.
CREATE ROLE regress_cl_redis_user;
SET ROLE regress_cl_redis_user;
SHOW coupon_lock.redis_password;
SELECT count(*) AS visible FROM pg_settings WHERE name = 'coupon_lock.redis_password';
SELECT pg_temp.err($$SELECT current_setting('coupon_lock.redis_password')$$);
SET coupon_lock.redis_password = 'guess';
SET coupon_lock.redis_host = 'elsewhere';
SET coupon_lock.redis_guard = off;
RESET ROLE;
DROP ROLE regress_cl_redis_user;
SELECT count(*) AS visible_to_superuser FROM pg_settings WHERE name = 'coupon_lock.redis_password';
SELECT name, unit, context FROM pg_settings WHERE name LIKE 'coupon_lock.redis%' ORDER BY name;

-- A wrong password: a class 08 error that does not show the password.
SET coupon_lock.redis_password = 's3cret-never-shown';
SELECT pg_temp.err($$SELECT redis_lock('k', '1s')$$);
SELECT regexp_replace(pg_temp.err_text($$SELECT redis_lock('k', '1s')$$), '\d+', 'N', 'g') AS error_text;
SELECT pg_temp.err_text($$SELECT redis_lock('k', '1s')$$) LIKE '%s3cret%' AS password_shown;
RESET coupon_lock.redis_password;
SELECT redis_lock('pw', '1s') IS NOT NULL AS works_again;
-- Nothing listens: 08001.
SET coupon_lock.redis_port = 1;
SELECT pg_temp.err($$SELECT redis_lock('k', '1s')$$);
RESET coupon_lock.redis_port;
-- Redis not configured: 55000; hybrid_xact_lock is the advisory lock alone.
SET coupon_lock.redis_host = '';
SELECT pg_temp.err($$SELECT redis_lock('k', '1s')$$);
BEGIN;
SELECT hybrid_xact_lock('alone', '60s', '0') AS advisory_held;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:alone
COMMIT;
RESET coupon_lock.redis_host;

SELECT kind, acquired > 0 AS acquired, waited > 0 AS waited, timed_out > 0 AS timed_out,
       released > 0 AS released, errors > 0 AS errors
  FROM lock_stats WHERE kind = 'redis';
