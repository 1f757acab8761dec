-- coupon_lock install script: the hybrid lock (src/hybrid.c)
--
-- Touches no table: neither SECURITY DEFINER nor pinned to a search_path.
-- PARALLEL UNSAFE like the Redis functions it uses.  PUBLIC may not call
-- it; grant EXECUTE to the roles that need it (see docs/redis.md).

CREATE FUNCTION coupon_lock.hybrid_xact_lock(key text, ttl interval DEFAULT '30 seconds',
                                             wait interval DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'coupon_lock_hybrid_xact_lock'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION coupon_lock.hybrid_xact_lock(text, interval, interval) IS
    'advisory_xact_lock(key) and, where Redis is configured, redis_xact_lock(key, ttl), both within wait (NULL: no limit), all or nothing; true when both are held';

REVOKE ALL ON FUNCTION coupon_lock.hybrid_xact_lock(text, interval, interval) FROM PUBLIC;
