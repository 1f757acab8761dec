
-- Redis locks (src/redis_lock.c, src/stats.c, src/guard.c, src/hybrid.c).
--
-- lock_stats gains the column lost: a Redis or guard lock found gone
-- before its holder let go (its TTL ran out, someone else may have taken
-- it).  A function's OUT columns cannot change in place, and the view
-- depends on the function: both are made again as a fresh 1.1 install
-- makes them.  Privileges granted on them by hand (a monitoring role) must
-- be granted again after the update.
DROP VIEW coupon_lock.lock_stats;
DROP FUNCTION coupon_lock.lock_stats();

CREATE FUNCTION coupon_lock.lock_stats(
    OUT kind text, OUT acquired bigint, OUT waited bigint, OUT timed_out bigint,
    OUT deadlocks bigint, OUT released bigint, OUT errors bigint, OUT lost bigint,
    OUT scope text)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'coupon_lock_lock_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.lock_stats() IS
    'lock counters per kind (advisory, lease, redis); lost: held locks found gone before their holder let go; scope shared: all backends (coupon_lock in shared_preload_libraries), backend: this backend only';

CREATE VIEW coupon_lock.lock_stats AS SELECT * FROM coupon_lock.lock_stats();
COMMENT ON VIEW coupon_lock.lock_stats IS
    'lock counters per kind of lock; see the scope column for whose activity they count';

REVOKE ALL ON FUNCTION coupon_lock.lock_stats() FROM PUBLIC;
REVOKE ALL ON coupon_lock.lock_stats FROM PUBLIC;

-- The guard's key names the database, so that databases sharing one Redis
-- never hold up each other's coupons; guard_key says what it is.
CREATE FUNCTION coupon_lock.guard_key(coupon_id bigint)
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_guard_key'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION coupon_lock.guard_key(bigint) IS
    'Redis key (less coupon_lock.redis_key_prefix) of the guard of a coupon of this database: ''coupon:'' || current_database() || '':'' || coupon_id; the guard''s advisory key is ''coupon:'' || coupon_id';

REVOKE ALL ON FUNCTION coupon_lock.guard_key(bigint) FROM PUBLIC;

-- Redlock (src/redlock.c): the validity a held Redis lock has left.
CREATE FUNCTION coupon_lock.redis_lock_validity(key text, token text)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_redis_lock_validity'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_lock_validity(text, text) IS
    'milliseconds the Redis lock key held by token has left (its TTL less drift, 1% of it plus 2 ms; with Redlock the smallest of a majority''s TTLs, less the round''s time); NULL when token does not hold key (on a majority)';

REVOKE ALL ON FUNCTION coupon_lock.redis_lock_validity(text, text) FROM PUBLIC;
