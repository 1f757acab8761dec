-- Advisory locks by text key: every function, scopes, reentrancy and bad input.
-- err() runs a statement and shows its SQLSTATE and message instead of failing.
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- Our locks as this backend sees them (the key text is known for its own locks).
CREATE TEMP VIEW mine AS
    SELECT key, mode, granted, lock_id = coupon_lock.advisory_lock_id(key) AS id_matches
      FROM coupon_lock.advisory_locks WHERE pid = pg_backend_pid() ORDER BY key;
SELECT coupon_lock.lock_stats_reset();

-- The id of a key is hashtextextended(key, 0): 64 bits, computable in SQL.
SELECT coupon_lock.advisory_lock_id('order:42') = hashtextextended('order:42', 0) AS same_as_core_hash,
       coupon_lock.advisory_lock_id('order:42') <> coupon_lock.advisory_lock_id('order:43') AS differs;

-- Session scope, reentrant: two holds need two unlocks; a third unlock warns.
SELECT coupon_lock.advisory_lock('order:42');
SELECT coupon_lock.advisory_lock('order:42', '0');
SELECT * FROM mine;
SELECT coupon_lock.advisory_unlock('order:42');
SELECT * FROM mine;
SELECT coupon_lock.advisory_unlock('order:42');
SELECT coupon_lock.advisory_unlock('order:42');
SELECT * FROM mine;

-- The lock space is our own: pg_locks shows objsubid 17228, the id split in
-- classid (high half) and objid (low half).
SELECT coupon_lock.advisory_lock('space');
SELECT l.objsubid, ((l.classid::bigint << 32) | l.objid::bigint) = coupon_lock.advisory_lock_id('space') AS id_in_pg_locks
  FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid();
-- A core lock on the same number is a different lock, invisible to the view.
SELECT pg_advisory_lock(coupon_lock.advisory_lock_id('space'));
SELECT objsubid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY objsubid;
SELECT * FROM mine;
SELECT pg_advisory_unlock(coupon_lock.advisory_lock_id('space'));
-- pg_advisory_unlock_all() drops every session advisory lock, ours too.
SELECT pg_advisory_unlock_all();
SELECT * FROM mine;

-- Session locks survive commit, rollback and ROLLBACK TO SAVEPOINT.
BEGIN;
SELECT coupon_lock.advisory_lock('survivor');
ROLLBACK;
BEGIN;
SAVEPOINT sp;
SELECT coupon_lock.advisory_lock('survivor');
ROLLBACK TO SAVEPOINT sp;
COMMIT;
SELECT * FROM mine;
SELECT coupon_lock.advisory_unlock('survivor'), coupon_lock.advisory_unlock('survivor');
SELECT * FROM mine;

-- Transaction scope: held until the transaction ends (commit or rollback),
-- released by ROLLBACK TO SAVEPOINT when taken after the savepoint;
-- advisory_unlock does not release it.
BEGIN;
SELECT coupon_lock.advisory_xact_lock('xact', '1 second');
SELECT coupon_lock.advisory_xact_lock('xact');
SELECT coupon_lock.advisory_unlock('xact');
SELECT * FROM mine;
COMMIT;
SELECT * FROM mine;
BEGIN;
SELECT coupon_lock.advisory_xact_lock('xact');
SAVEPOINT sp;
SELECT coupon_lock.advisory_xact_lock('in-savepoint');
SELECT * FROM mine;
ROLLBACK TO SAVEPOINT sp;
SELECT * FROM mine;
ROLLBACK;
SELECT * FROM mine;
-- Session and transaction holds of one key coexist.
BEGIN;
SELECT coupon_lock.advisory_lock('both'), coupon_lock.advisory_xact_lock('both');
COMMIT;
SELECT * FROM mine;
SELECT coupon_lock.advisory_unlock('both');

-- Keys: any text up to 512 bytes, compared byte for byte.
SELECT coupon_lock.advisory_lock(repeat('k', 512)) AS longest, coupon_lock.advisory_lock('ключ') AS utf8;
SELECT coupon_lock.advisory_unlock(repeat('k', 512)), coupon_lock.advisory_unlock('ключ');
SELECT coupon_lock.advisory_lock_id('Key') <> coupon_lock.advisory_lock_id('key') AS case_matters;

-- Timeouts: '0' and tiny or huge ones on a free lock are fine.
SELECT coupon_lock.advisory_lock('t', '0'), coupon_lock.advisory_lock('t', '1 microsecond'),
       coupon_lock.advisory_lock('t', '1000 years');
SELECT pg_advisory_unlock_all();

-- Bad input.
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock(NULL)$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock('')$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock(repeat('k', 513))$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock('k', '-1 second')$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock('k', '1 day -25 hours')$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_xact_lock(NULL, '1 second')$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_xact_lock('', NULL)$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_xact_lock('k', '-1 ms')$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_unlock(NULL)$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_unlock('')$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_unlock(repeat('k', 10000))$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock_id(NULL)$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock_id('')$$);
SELECT coupon_lock.advisory_lock_key(NULL), coupon_lock.advisory_lock_key(0);
-- Failed calls took nothing.
SELECT * FROM mine;

-- Counters (this database's tests run one at a time, so only ours count).
SELECT kind, acquired, waited, timed_out, deadlocks, released, errors, scope
  FROM coupon_lock.lock_stats WHERE kind = 'advisory';
SELECT coupon_lock.lock_stats_reset();
SELECT kind, acquired, waited, timed_out, deadlocks, released, errors, scope
  FROM coupon_lock.lock_stats ORDER BY kind;
