-- The key memory behind advisory_lock_key and the advisory_locks view, and
-- the per-session ceiling coupon_lock.max_held_keys (issue 10, items 2, 12, 22).
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.key_of(k text) RETURNS text LANGUAGE sql
    AS $$ SELECT coupon_lock.advisory_lock_key(coupon_lock.advisory_lock_id(k)) $$;
CREATE TEMP VIEW mine AS
    SELECT count(*) AS locks, count(key) AS with_key
      FROM coupon_lock.advisory_locks WHERE pid = pg_backend_pid();

-- advisory_lock_key answers for held locks only: not for a key released,
-- nor one whose transaction ended or was rolled back to a savepoint, nor
-- one dropped by pg_advisory_unlock_all().
SELECT coupon_lock.advisory_lock('k1'), pg_temp.key_of('k1') AS held;
SELECT coupon_lock.advisory_lock('k1'), coupon_lock.advisory_unlock('k1'), pg_temp.key_of('k1') AS held_once_more;
SELECT coupon_lock.advisory_unlock('k1'), pg_temp.key_of('k1') AS released;
BEGIN;
SELECT coupon_lock.advisory_xact_lock('x1'), pg_temp.key_of('x1') AS held;
SAVEPOINT sp;
SELECT coupon_lock.advisory_xact_lock('x2'), pg_temp.key_of('x2') AS held;
ROLLBACK TO SAVEPOINT sp;
SELECT pg_temp.key_of('x1') AS still_held, pg_temp.key_of('x2') AS rolled_back;
COMMIT;
SELECT pg_temp.key_of('x1') AS committed;
SELECT coupon_lock.advisory_lock('u1'), pg_advisory_unlock_all(), pg_temp.key_of('u1') AS unlocked_all;
SELECT * FROM mine;

-- The ceiling: superuser-set, 1000 by default.
SHOW coupon_lock.max_held_keys;
SELECT context FROM pg_settings WHERE name = 'coupon_lock.max_held_keys';
SET coupon_lock.max_held_keys = 3;
BEGIN;
SELECT coupon_lock.advisory_lock('c1'), coupon_lock.advisory_lock('c2'), coupon_lock.advisory_xact_lock('c3');
-- A fourth key is refused, in either scope; re-taking a held one is not.
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock('c4')$$);
SELECT pg_temp.err($$SELECT coupon_lock.advisory_xact_lock('c4', '0')$$);
SELECT coupon_lock.advisory_xact_lock('c2'), coupon_lock.advisory_lock('c1', '0');
SELECT * FROM mine;
COMMIT;
-- c3 went with its transaction: room for c4.  The refusal has a detail and a hint.
SELECT coupon_lock.advisory_lock('c4');
SELECT coupon_lock.advisory_lock('c5');
-- One unlock of a key held twice keeps it; the second frees a place.
SELECT coupon_lock.advisory_unlock('c1');
SELECT pg_temp.err($$SELECT coupon_lock.advisory_lock('c5')$$);
SELECT coupon_lock.advisory_unlock('c1');
SELECT coupon_lock.advisory_lock('c5');
-- Keys dropped behind our back (pg_advisory_unlock_all) free their places.
SELECT pg_advisory_unlock_all();
SELECT coupon_lock.advisory_lock('c' || i) FROM generate_series(1, 3) i;
SELECT pg_advisory_unlock_all();
SELECT * FROM mine;
-- The guard's key counts like any other.
BEGIN;
SELECT coupon_lock.advisory_xact_lock('g1'), coupon_lock.advisory_xact_lock('g2'), coupon_lock.advisory_xact_lock('g3');
SELECT pg_temp.err($$SELECT coupon_lock.hybrid_xact_lock('g4')$$);
ROLLBACK;
RESET coupon_lock.max_held_keys;

-- Only a superuser moves it.
CREATE ROLE advisory_keys_app;
GRANT USAGE ON SCHEMA coupon_lock TO advisory_keys_app;
GRANT EXECUTE ON FUNCTION coupon_lock.advisory_lock(text, interval) TO advisory_keys_app;
SET ROLE advisory_keys_app;
SELECT pg_temp.err($$SET coupon_lock.max_held_keys = 100000$$);
RESET ROLE;
DROP OWNED BY advisory_keys_app;
DROP ROLE advisory_keys_app;

-- Beyond what 1.0 remembered (4096 keys): every held key shows in the view.
SET coupon_lock.max_held_keys = 5000;
BEGIN;
SELECT count(*) FILTER (WHERE coupon_lock.advisory_xact_lock('bulk:' || i)) AS taken
  FROM generate_series(1, 5000) i;
SELECT * FROM mine;
SELECT count(*) FILTER (WHERE lock_id = coupon_lock.advisory_lock_id(key) AND key LIKE 'bulk:%') AS keys_match
  FROM coupon_lock.advisory_locks WHERE pid = pg_backend_pid();
SELECT pg_temp.err($$SELECT coupon_lock.advisory_xact_lock('bulk:5001')$$);
COMMIT;
-- The next transaction has them all back.
BEGIN;
SELECT count(*) FILTER (WHERE coupon_lock.advisory_xact_lock('bulk2:' || i)) AS taken
  FROM generate_series(1, 5000) i;
ROLLBACK;
SELECT * FROM mine;
RESET coupon_lock.max_held_keys;
