-- ha (issue 11, issue 10 items 13 and 14): fencing epochs, leases that never
-- wait without limit, the sweeper background worker.  The lease table keeps
-- its layout: 1.0 tokens (epoch bits 0) stay valid and lie below every token
-- granted from now on.

COMMENT ON COLUMN coupon_lock.lease.fence IS
    'fencing token of the latest grant: the epoch (timeline) in the high 32 bits, a counter in the low 32; rises with every grant, also across a promotion, never reused';
COMMENT ON FUNCTION coupon_lock.lease_acquire(text, text, interval) IS
    'grants the lease for ttl and returns its fencing token (strictly increasing per name, also across a promotion); NULL while another holder''s lease is unexpired; the holder acquiring again renews and keeps its token';
COMMENT ON FUNCTION coupon_lock.lease_check(text, bigint) IS
    'true only while fence is the current unexpired grant; in a read-write transaction it then keeps the lease row share-locked until the transaction ends, so no new grant precedes the commit of the write it guards; a plain read in read-only transactions and on standbys';

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
