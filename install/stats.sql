-- coupon_lock install script: lock counters (src/stats.c)

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

CREATE FUNCTION coupon_lock.lock_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'coupon_lock_lock_stats_reset'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.lock_stats_reset() IS
    'sets the lock counters of lock_stats to zero (all backends'' when shared)';

REVOKE ALL ON FUNCTION coupon_lock.lock_stats(), coupon_lock.lock_stats_reset() FROM PUBLIC;
REVOKE ALL ON coupon_lock.lock_stats FROM PUBLIC;
