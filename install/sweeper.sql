-- coupon_lock install script: the sweeper background worker (src/sweeper.c)

CREATE FUNCTION coupon_lock.sweeper_stats(
    OUT database text, OUT state text, OUT rounds bigint, OUT released bigint,
    OUT expired bigint, OUT errors bigint, OUT last_run timestamptz)
RETURNS SETOF record AS 'MODULE_PATHNAME', 'coupon_lock_sweeper_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION coupon_lock.sweeper_stats() IS
    'the sweeper''s work per database of coupon_lock.sweep_databases since server start; no rows unless coupon_lock is in shared_preload_libraries';

CREATE VIEW coupon_lock.sweeper_stats AS SELECT * FROM coupon_lock.sweeper_stats();
COMMENT ON VIEW coupon_lock.sweeper_stats IS
    'per swept database: state (waiting, ok, no database, no extension, read-only, failed, standby), finished rounds, coupons released and expired, failed rounds, end of the last round';

-- Monitoring, like lock_stats: granted by the administrator (README, Privileges).
REVOKE ALL ON FUNCTION coupon_lock.sweeper_stats() FROM PUBLIC;
REVOKE ALL ON coupon_lock.sweeper_stats FROM PUBLIC;
