-- Redis locks held by a transaction (issue 10, items 2, 4, 6, 24): asking
-- Redis again when a held key is taken again, locks lost before COMMIT,
-- bulk keys in one transaction, and what lock_stats counts.  Runs against
-- the suite's Redis (see sql/redis.sql).
SET search_path = coupon_lock, public;
CREATE FUNCTION pg_temp.stat(k text, col text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    EXECUTE format('SELECT %I FROM coupon_lock.lock_stats WHERE kind = %L', col, k) INTO v;
    RETURN v;
END $$;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'coupon_lock' AND table_name = 'lock_stats' ORDER BY ordinal_position;

-- Taking a held key again asks Redis and resets the TTL to the new ttl.
BEGIN;
SELECT redis_xact_lock('again', '2s') AS tok \gset
SELECT redis_xact_lock('again', '100s') = :'tok' AS same_token;
\set pttl `redis-cli -p "$CL_REDIS_PORT" PTTL coupon_lock:again`
SELECT :pttl > 2000 AS new_ttl_honoured;
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:again

-- A key the transaction holds cannot be taken again in session scope (NULL),
-- and stays the transaction's: released at COMMIT.
BEGIN;
SELECT redis_xact_lock('mixed', '60s') IS NOT NULL AS xact_locked;
SELECT redis_lock('mixed', '60s') IS NULL AS session_lock_refused;
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:mixed

-- The key expired and an outside process took it: taking it again says
-- not held (NULL), with a WARNING and a lost count; the outsider's key stays.
SELECT pg_temp.stat('redis', 'lost') AS lost0 \gset
BEGIN;
SELECT redis_xact_lock('stolen', '1s') IS NOT NULL AS locked;
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:stolen outsider PX 60000
SELECT redis_xact_lock('stolen', '10s') IS NULL AS not_held;
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" GET coupon_lock:stolen
SELECT pg_temp.stat('redis', 'lost') - :lost0 AS lost;
-- The key expired and nobody took it: taken afresh, with a new token.
BEGIN;
SELECT redis_xact_lock('lapsed', '1s') AS tok \gset
\! redis-cli -p "$CL_REDIS_PORT" DEL coupon_lock:lapsed
SELECT redis_xact_lock('lapsed', '10s') <> :'tok' AS taken_afresh;
\set val `redis-cli -p "$CL_REDIS_PORT" GET coupon_lock:lapsed`
SELECT :'val' <> :'tok' AS redis_holds_the_new_token;
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:lapsed

-- A lock lost before COMMIT: a WARNING naming the key, counted as lost,
-- not as released; the new holder's key is left alone.
SELECT pg_temp.stat('redis', 'lost') AS lost0, pg_temp.stat('redis', 'released') AS rel0 \gset
BEGIN;
SELECT redis_xact_lock('lost-at-commit', '60s') IS NOT NULL AS locked;
SELECT redis_xact_lock('kept-at-commit', '60s') IS NOT NULL AS locked;
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:lost-at-commit newholder PX 60000
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" GET coupon_lock:lost-at-commit
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:kept-at-commit
SELECT pg_temp.stat('redis', 'lost') - :lost0 AS lost, pg_temp.stat('redis', 'released') - :rel0 AS released;
-- at a savepoint's rollback too
BEGIN;
SAVEPOINT s;
SELECT redis_xact_lock('lost-in-sub', '60s') IS NOT NULL AS locked;
\! redis-cli -p "$CL_REDIS_PORT" SET coupon_lock:lost-in-sub newholder PX 60000
ROLLBACK TO s;
COMMIT;
SELECT pg_temp.stat('redis', 'lost') - :lost0 AS lost;
\! redis-cli -p "$CL_REDIS_PORT" DEL coupon_lock:lost-at-commit coupon_lock:lost-in-sub coupon_lock:stolen

-- Keys of savepoints: a released savepoint passes its keys to its parent,
-- a rolled-back one releases only its own, nested ones included.
BEGIN;
SELECT redis_xact_lock('outer', '60s') IS NOT NULL AS locked;
SAVEPOINT a;
SELECT redis_xact_lock('in-a', '60s') IS NOT NULL AS locked;
SAVEPOINT b;
SELECT redis_xact_lock('in-b', '60s') IS NOT NULL AS locked;
RELEASE b;
SAVEPOINT c;
SELECT redis_xact_lock('in-c', '60s') IS NOT NULL AS locked;
ROLLBACK TO c;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:outer coupon_lock:in-a coupon_lock:in-b coupon_lock:in-c
ROLLBACK TO a;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:outer coupon_lock:in-a coupon_lock:in-b coupon_lock:in-c
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS coupon_lock:outer

-- Many keys in one transaction: each taken once, all released at COMMIT.
BEGIN;
SELECT count(redis_xact_lock('bulk:' || g, '60s')) AS taken FROM generate_series(1, 20000) g;
SELECT count(redis_xact_lock('bulk:' || g, '60s')) AS taken_again FROM generate_series(1, 20000, 1000) g;
\! redis-cli -p "$CL_REDIS_PORT" --scan --pattern 'coupon_lock:bulk:*' | wc -l
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" --scan --pattern 'coupon_lock:bulk:*' | wc -l

-- lock_stats counts what a user did: one hybrid_xact_lock is one advisory
-- and one Redis acquisition; the hand-over from session to transaction
-- scope inside it is neither an acquisition nor a release.
SELECT pg_temp.stat('advisory', 'acquired') AS a0, pg_temp.stat('advisory', 'released') AS r0,
       pg_temp.stat('redis', 'acquired') AS ra0 \gset
BEGIN;
SELECT hybrid_xact_lock('counted', '60s', '0') AS held;
COMMIT;
SELECT pg_temp.stat('advisory', 'acquired') - :a0 AS advisory_acquired,
       pg_temp.stat('advisory', 'released') - :r0 AS advisory_released,
       pg_temp.stat('redis', 'acquired') - :ra0 AS redis_acquired;
-- a sweep's guard only tests the advisory lock: counted as no advisory lock
SELECT create_batch('stats-sweep', 2, 2) AS b \gset
SELECT first_coupon_id AS c FROM batch WHERE batch_id = :b \gset
SELECT coupon_issue(:c, 'dora') AS version;
SELECT coupon_freeze(:c, 'dora', 'o-1', NULL, '1 millisecond') AS version;
SELECT pg_sleep(0.01);
SET coupon_lock.redis_guard = on;
SELECT pg_temp.stat('advisory', 'acquired') AS a0, pg_temp.stat('advisory', 'released') AS r0,
       pg_temp.stat('redis', 'acquired') AS ra0 \gset
SELECT release_expired_freezes() AS released;
SELECT pg_temp.stat('advisory', 'acquired') - :a0 AS advisory_acquired,
       pg_temp.stat('advisory', 'released') - :r0 AS advisory_released,
       pg_temp.stat('redis', 'acquired') - :ra0 AS redis_acquired;
RESET coupon_lock.redis_guard;
