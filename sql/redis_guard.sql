-- The guard: with coupon_lock.redis_guard on, coupon transitions take
-- hybrid_xact_lock('coupon:' || coupon_id) first (its Redis key is
-- prefix || guard_key(coupon_id)), so a holder outside the
-- database that took the Redis key coupon_lock:coupon:<database>:<id> keeps
-- the coupon to itself.  Runs against the suite's Redis (see sql/redis.sql).
SET search_path = coupon_lock, public;
-- Errors show their SQLSTATE only: messages name coupon ids, which depend on
-- the tests that ran before.
\set VERBOSITY sqlstate
SELECT create_batch('guard', 6, 6) AS b \gset
SELECT first_coupon_id AS c0, first_coupon_id + 1 AS c1, first_coupon_id + 2 AS c2,
       first_coupon_id + 3 AS c3, first_coupon_id + 4 AS c4, first_coupon_id + 5 AS c5
  FROM batch WHERE batch_id = :b \gset
-- The guard's key names the database: coupon:<database>:<id>.
SELECT guard_key(:c0) = 'coupon:' || current_database() || ':' || :c0 AS guard_key_layout;
SELECT guard_key(NULL) IS NULL AS guard_key_strict;
-- The outside holder's redis-cli reads the guards' Redis keys from the environment.
SELECT current_setting('coupon_lock.redis_key_prefix') || guard_key(:c0) AS g0,
       current_setting('coupon_lock.redis_key_prefix') || guard_key(:c1) AS g1,
       current_setting('coupon_lock.redis_key_prefix') || guard_key(:c2) AS g2,
       current_setting('coupon_lock.redis_key_prefix') || guard_key(:c3) AS g3,
       current_setting('coupon_lock.redis_key_prefix') || guard_key(:c4) AS g4 \gset
\setenv C0 :c0
\setenv G0 :g0
\setenv G1 :g1
\setenv G2 :g2
\setenv G3 :g3
\setenv G4 :g4

-- Off (the default): an outside holder does not stop a transition.
\! redis-cli -p "$CL_REDIS_PORT" SET "$G0" outside PX 60000
SELECT coupon_issue(:c0, 'alice') AS version;
\! redis-cli -p "$CL_REDIS_PORT" DEL "$G0"
-- On: the same coupon id's guard of another database, and the 1.0 layout
-- without a database, do not stop it.
\! redis-cli -p "$CL_REDIS_PORT" SET "coupon_lock:coupon:another_db:$C0" outside PX 60000
\! redis-cli -p "$CL_REDIS_PORT" SET "coupon_lock:coupon:$C0" outside PX 60000
SET coupon_lock.redis_guard = on;
BEGIN;
SELECT coupon_revoke(:c0, 99) IS NULL AS unreachable;
ROLLBACK;
RESET coupon_lock.redis_guard;
\! redis-cli -p "$CL_REDIS_PORT" DEL "coupon_lock:coupon:another_db:$C0" "coupon_lock:coupon:$C0"

-- On: the transition waits at most redis_guard_wait, then fails with 55P03
-- and leaves the coupon as it was.
\! redis-cli -p "$CL_REDIS_PORT" SET "$G0" outside PX 60000
SET coupon_lock.redis_guard = on;
SET coupon_lock.redis_guard_wait = '200ms';
SELECT coupon_freeze(:c0, 'alice', 'order-1');
SELECT state, version FROM coupon WHERE coupon_id = :c0;
-- An outside holder whose key expires within the wait: the transition goes through.
\! redis-cli -p "$CL_REDIS_PORT" SET "$G0" outside PX 300
SET coupon_lock.redis_guard_wait = '30s';
SELECT coupon_freeze(:c0, 'alice', 'order-1') AS version;
-- The guard's key is gone once the transition's transaction ended.
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "$G0"

-- Inside a transaction the guard holds both locks until the end.
BEGIN;
SELECT coupon_issue(:c1, 'bob') AS version;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "$G1"
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
-- taking the guard by hand first does not block the transition (reentrant)
SELECT hybrid_xact_lock('coupon:' || :c1, '60s', '0') AS guard_held;
SELECT coupon_freeze(:c1, 'bob', 'order-2') AS version;
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "$G1"
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- A failed transition releases the guard too.
BEGIN;
SELECT coupon_redeem(:c1, 'order-x');
ROLLBACK;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "$G1"

-- Claims pass over a coupon whose guard is held outside and take the next.
\! redis-cli -p "$CL_REDIS_PORT" SET "$G2" outside PX 60000
SELECT coupon_claim(:b, 'carol') - :c0 AS claimed_offset;
SELECT coupon_claim(:b, 'carol') - :c0 AS claimed_offset;
SELECT coupon_claim(:b, 'carol') - :c0 AS claimed_offset;
SELECT coupon_claim(:b, 'carol') AS none_left_to_take;
\! redis-cli -p "$CL_REDIS_PORT" DEL "$G2"
SELECT coupon_claim(:b, 'carol') - :c0 AS claimed_offset;

-- Sweeps pass over a coupon whose guard is held and take no lock-table entry.
SELECT coupon_freeze(:c3, 'carol', 'order-3', NULL, '1 millisecond') AS version;
SELECT coupon_freeze(:c4, 'carol', 'order-4', NULL, '1 millisecond') AS version;
SELECT pg_sleep(0.01);
\! redis-cli -p "$CL_REDIS_PORT" SET "$G3" outside PX 60000
BEGIN;
SELECT release_expired_freezes() >= 1 AS released_some;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "$G4"
COMMIT;
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "$G4"
SELECT coupon_id - :c0 AS coupon_offset, state, version FROM coupon WHERE coupon_id IN (:c3, :c4) ORDER BY 1;
\! redis-cli -p "$CL_REDIS_PORT" DEL "$G3"
SELECT release_expired_freezes() >= 1 AS released_some;
SELECT coupon_id - :c0 AS coupon_offset, state, version FROM coupon WHERE coupon_id IN (:c3, :c4) ORDER BY 1;

-- Redis unreachable: the transition fails with class 08 and changes nothing.
SET coupon_lock.redis_port = 1;
SELECT coupon_revoke(:c5);
SELECT state, version FROM coupon WHERE coupon_id = :c5;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
RESET coupon_lock.redis_port;
SELECT coupon_revoke(:c5) AS version;

-- Redis not configured: the guard is the advisory lock alone.
SET coupon_lock.redis_host = '';
BEGIN;
SELECT coupon_revoke(:c4) AS version;
SELECT count(*) AS advisory_locks FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
\! redis-cli -p "$CL_REDIS_PORT" EXISTS "$G4"
COMMIT;
RESET coupon_lock.redis_host;
RESET coupon_lock.redis_guard;
RESET coupon_lock.redis_guard_wait;
