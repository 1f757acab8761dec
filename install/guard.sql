-- coupon_lock install script: the guard of coupon transitions (src/guard.c)
--
-- With coupon_lock.redis_guard on, every coupon transition first takes
-- hybrid_xact_lock('coupon:' || coupon_id), whose Redis key is
-- redis_key_prefix || coupon_lock.guard_key(coupon_id).  guard_key touches
-- no table: neither SECURITY DEFINER nor pinned to a search_path.

CREATE FUNCTION coupon_lock.guard_key(coupon_id bigint)
RETURNS text AS 'MODULE_PATHNAME', 'coupon_lock_guard_key'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION coupon_lock.guard_key(bigint) IS
    'Redis key (less coupon_lock.redis_key_prefix) of the guard of a coupon of this database: ''coupon:'' || current_database() || '':'' || coupon_id; the guard''s advisory key is ''coupon:'' || coupon_id';

REVOKE ALL ON FUNCTION coupon_lock.guard_key(bigint) FROM PUBLIC;
