-- test/prove/upgrade_after.sql: after ALTER EXTENSION coupon_lock UPDATE, the
-- data written at 1.0 (test/prove/upgrade_fill.sql) works under 1.1: each
-- query prints "name|t" or "name|f|detail" (common.sh: pv_sql_checks).
-- Everything runs in one transaction that is rolled back, so the database
-- stays as the upgrade left it for the checks that follow.
BEGIN;
-- the SQLSTATE a statement raises ('00000' when it succeeds)
CREATE FUNCTION pg_temp.upgrade_state(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN '00000';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
SELECT batch_id AS main, first_coupon_id AS m FROM coupon_lock.batch WHERE name = 'upgrade main' \gset
SELECT batch_id AS soldout FROM coupon_lock.batch WHERE name = 'upgrade sold out' \gset
SELECT batch_id AS ending FROM coupon_lock.batch WHERE name = 'upgrade ending' \gset

-- a freeze taken at 1.0 is redeemed by its order, once
SELECT coupon_id AS fz, order_id AS fz_order, version AS fz_version
  FROM coupon_lock.coupon WHERE batch_id = :main AND state = 'frozen' AND frozen_until > now()
 ORDER BY coupon_id LIMIT 1 \gset
SELECT 'a freeze from 1.0 is redeemed by its order (version +1)',
       coupon_lock.coupon_redeem(:fz, :'fz_order') = :fz_version + 1;
SELECT 'the redeem is idempotent and wrote one ledger row',
       coupon_lock.coupon_redeem(:fz, :'fz_order') = :fz_version + 1
       AND (SELECT count(*) FROM coupon_lock.coupon_event WHERE coupon_id = :fz AND op = 'redeem') = 1;
-- the claim sequence of a 1.0 batch goes on where it was
SELECT 'a 1.0 batch still hands out its remaining coupons',
       coupon_lock.coupon_claim(:main, 'owner-after') BETWEEN :m AND :m + 29;
SELECT 'the per-user limit counted at 1.0 still holds (CL005)', sqlstate = 'CL005', sqlstate
  FROM (SELECT pg_temp.upgrade_state(format('SELECT coupon_lock.coupon_claim(%s, %L)', :main, owner_id)) sqlstate
          FROM coupon_lock.owner_quota WHERE batch_id = :main AND held = 3 ORDER BY owner_id LIMIT 1) x;
SELECT 'a batch sold out at 1.0 stays sold out', coupon_lock.coupon_claim(:soldout, 'owner-u') IS NULL;
SELECT 'an ended batch refuses claims (CL006)',
       pg_temp.upgrade_state(format('SELECT coupon_lock.coupon_claim(%s, %L)', :ending, 'owner-v')) = 'CL006';
-- compare-and-swap on a version written at 1.0
SELECT coupon_id AS iss, owner_id AS iss_owner, version AS iss_version
  FROM coupon_lock.coupon WHERE batch_id = :main AND state = 'issued' ORDER BY coupon_id DESC LIMIT 1 \gset
SELECT 'a stale expected_version from 1.0 is refused (40001)',
       pg_temp.upgrade_state(format('SELECT coupon_lock.coupon_freeze(%s, %L, %L, %s)',
                                    :iss, :'iss_owner', 'order-x', :iss_version - 1)) = '40001';
SELECT 'the current expected_version from 1.0 is accepted',
       coupon_lock.coupon_freeze(:iss, :'iss_owner', 'order-x', :iss_version) = :iss_version + 1;
-- the freeze that lapsed at 1.0 and was never swept is swept now
SELECT 'the lapsed 1.0 freeze is released by the 1.1 sweep', coupon_lock.release_expired_freezes() = 1;
-- leases keep their holders and tokens
SELECT fence AS held_fence FROM coupon_lock.lease WHERE name = 'upgrade-held' \gset
SELECT 'a lease held at 1.0 still checks true with its token', coupon_lock.lease_check('upgrade-held', :held_fence);
SELECT 'and is not granted to another holder', coupon_lock.lease_acquire('upgrade-held', 'worker-9', '1 minute') IS NULL;
-- (1.1 tokens carry the timeline in their high 32 bits: every one lies above
-- every 1.0 token, issue 11)
SELECT 'a lapsed 1.0 lease is granted with a token above its 1.0 token (one of the epoch)',
       coupon_lock.lease_acquire('upgrade-lapsed', 'worker-2', '1 minute') > (1::bigint << 32);
SELECT 'a lease granted twice at 1.0 goes on above its 1.0 token 2',
       coupon_lock.lease_release('upgrade-regranted', 'worker-2')
       AND coupon_lock.lease_acquire('upgrade-regranted', 'worker-3', '1 minute') > (1::bigint << 32);
ROLLBACK;
