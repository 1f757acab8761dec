-- coupon_lock install script: Redis locks (src/redis_lock.c, src/redis_conn.c)
--
-- These functions touch no table, so they are neither SECURITY DEFINER nor
-- pinned to a search_path.  They are PARALLEL UNSAFE: each backend has its
-- own Redis connection and its own list of keys to release at transaction
-- end.  Built without hiredis they exist and raise SQLSTATE 0A000.
-- PUBLIC may not call them: a role that may take Redis locks is granted
-- EXECUTE (see docs/redis.md).

CREATE FUNCTION coupon_lock.redis_lock(key text, ttl interval, wait interval DEFAULT '0')
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_redis_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_lock(text, interval, interval) IS
    'takes Redis key prefix||key with SET NX PX ttl, retrying until wait runs out; returns the token, NULL when not acquired';

CREATE FUNCTION coupon_lock.redis_unlock(key text, token text)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_redis_unlock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_unlock(text, text) IS
    'deletes Redis key prefix||key only while it holds token (atomic compare-and-delete); true when deleted';

CREATE FUNCTION coupon_lock.redis_extend(key text, token text, ttl interval)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_redis_extend'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_extend(text, text, interval) IS
    'resets the TTL of Redis key prefix||key to ttl only while it holds token; true when extended';

CREATE FUNCTION coupon_lock.redis_xact_lock(key text, ttl interval, wait interval DEFAULT '0')
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_redis_xact_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_xact_lock(text, interval, interval) IS
    'as redis_lock, and the key is deleted when the (sub)transaction that took it commits or aborts';

REVOKE ALL ON FUNCTION coupon_lock.redis_lock(text, interval, interval),
                       coupon_lock.redis_unlock(text, text),
                       coupon_lock.redis_extend(text, text, interval),
                       coupon_lock.redis_xact_lock(text, interval, interval)
    FROM PUBLIC;

CREATE FUNCTION coupon_lock.redis_lock_validity(key text, token text)
RETURNS bigint AS 'MODULE_PATHNAME', 'coupon_lock_redis_lock_validity'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.redis_lock_validity(text, text) IS
    'milliseconds the Redis lock key held by token has left (its TTL less drift, 1% of it plus 2 ms; with Redlock the smallest of a majority''s TTLs, less the round''s time); NULL when token does not hold key (on a majority)';

REVOKE ALL ON FUNCTION coupon_lock.redis_lock_validity(text, text) FROM PUBLIC;
