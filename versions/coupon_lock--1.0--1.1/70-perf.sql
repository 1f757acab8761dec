
-- perf (issue 14): coupon transitions as HOT updates (install/coupon.sql).
--
-- Runs inside ALTER EXTENSION's one transaction, so nothing here can use
-- CONCURRENTLY: CREATE INDEX coupon_unclaimed_idx holds a SHARE lock on
-- coupon_lock.coupon while it builds (reads go on, every coupon write waits),
-- and the backfill of freeze_deadline reads the frozen coupons through the old
-- index before it is dropped.  docs/performance.md gives the time per million
-- coupons and how to build the index beforehand on a live system.

-- New pages keep a fifth free so that a transition's new row version fits
-- beside the old one.  Pages already full gain the room as VACUUM prunes them
-- (or at once with VACUUM FULL / pg_repack, which rewrite the table).
ALTER TABLE coupon_lock.coupon SET (fillfactor = 80);

-- Lapsed freezes: one deadline row per frozen coupon.
CREATE TABLE coupon_lock.freeze_deadline (
    frozen_until timestamptz NOT NULL,
    coupon_id    bigint      NOT NULL,
    version      bigint      NOT NULL
);
INSERT INTO coupon_lock.freeze_deadline (frozen_until, coupon_id, version)
SELECT frozen_until, coupon_id, version FROM coupon_lock.coupon WHERE state = 'frozen';
CREATE INDEX freeze_deadline_idx ON coupon_lock.freeze_deadline (frozen_until);
COMMENT ON TABLE coupon_lock.freeze_deadline IS
    'one row per freeze: its deadline and the coupon''s version after it; release_expired_freezes reads and deletes what is due';
COMMENT ON INDEX coupon_lock.freeze_deadline_idx IS 'release_expired_freezes: due freezes, oldest first';
SELECT pg_catalog.pg_extension_config_dump('coupon_lock.freeze_deadline', '');
REVOKE ALL ON TABLE coupon_lock.freeze_deadline FROM PUBLIC;

-- expire_coupons walks each ended batch once.
ALTER TABLE coupon_lock.batch ADD COLUMN expire_from bigint;
COMMENT ON COLUMN coupon_lock.batch.expire_from IS
    'expire_coupons has passed every coupon of the batch below this id (NULL: first_coupon_id); only coupons in a final state lie below it';
CREATE INDEX batch_expiring_idx ON coupon_lock.batch (batch_id)
    WHERE valid_until IS NOT NULL AND COALESCE(expire_from, first_coupon_id) < first_coupon_id + quantity;
COMMENT ON INDEX coupon_lock.batch_expiring_idx IS 'expire_coupons: batches with a valid_until it has not walked to the end';

-- The claim fallback: coupons never issued.  Then the state-predicate
-- indexes go, which every transition had to insert into.
CREATE INDEX coupon_unclaimed_idx ON coupon_lock.coupon (batch_id, coupon_id) WHERE owner_id IS NULL;
COMMENT ON INDEX coupon_lock.coupon_unclaimed_idx IS
    'coupons never issued (available, or expired or revoked before anyone held them): the claim fallback';
DROP INDEX coupon_lock.coupon_available_idx;
DROP INDEX coupon_lock.coupon_issued_idx;
DROP INDEX coupon_lock.coupon_frozen_idx;
