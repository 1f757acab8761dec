-- test/prove/upgrade_fill.sql: the data of a database in service, written
-- through the 1.0 API only (test/prove/upgrade.sh runs it in a database
-- created at 1.0, and for the schema comparison also in a fresh 1.1 one).
-- Ends with coupons in every state, ledger rows of every op, quota rows,
-- claim sequences, a lapsed freeze nobody swept yet, and leases held,
-- released and lapsed.  Deterministic but for codes and times.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

SELECT coupon_lock.create_batch('upgrade main', 30, 3, NULL, '1 hour') AS main \gset
SELECT coupon_lock.create_batch('upgrade ending', 6, 2, now() + interval '2 seconds', '1 hour') AS ending \gset
SELECT coupon_lock.create_batch('upgrade sold out', 2, 2) AS soldout \gset
SELECT first_coupon_id AS m FROM coupon_lock.batch WHERE batch_id = :main \gset

-- claims (op claim): 20 of 30 to 8 owners (limit 3), and a direct issue
SELECT count(coupon_lock.coupon_claim(:main, 'owner-' || i % 8)) FROM generate_series(1, 20) i \g /dev/null
SELECT coupon_lock.coupon_issue(:m + 25, 'owner-direct') \g /dev/null
-- freezes (every fourth issued coupon), redeems (every eighth), an unfreeze
SELECT count(coupon_lock.coupon_freeze(coupon_id, owner_id, 'order-' || coupon_id))
  FROM coupon_lock.coupon WHERE batch_id = :main AND state = 'issued' AND coupon_id % 4 = 0 \g /dev/null
SELECT count(coupon_lock.coupon_redeem(coupon_id, order_id))
  FROM coupon_lock.coupon WHERE batch_id = :main AND state = 'frozen' AND coupon_id % 8 = 0 \g /dev/null
SELECT coupon_lock.coupon_unfreeze(coupon_id, order_id)
  FROM coupon_lock.coupon WHERE batch_id = :main AND state = 'frozen' ORDER BY coupon_id LIMIT 1 \g /dev/null
-- revokes: one available, one issued, one frozen
SELECT coupon_lock.coupon_revoke(:m + 29) \g /dev/null
SELECT coupon_lock.coupon_revoke(coupon_id)
  FROM coupon_lock.coupon WHERE batch_id = :main AND state = 'issued' ORDER BY coupon_id DESC LIMIT 1 \g /dev/null
SELECT coupon_lock.coupon_revoke(coupon_id)
  FROM coupon_lock.coupon WHERE batch_id = :main AND state = 'frozen' ORDER BY coupon_id DESC LIMIT 1 \g /dev/null
-- two freezes of one second: one swept below (op release), one left lapsed
SELECT count(coupon_lock.coupon_freeze(coupon_id, owner_id, 'order-short-' || coupon_id, NULL, '1 second'))
  FROM (SELECT coupon_id, owner_id FROM coupon_lock.coupon
         WHERE batch_id = :main AND state = 'issued' ORDER BY coupon_id LIMIT 2) c \g /dev/null
-- a sold-out batch: two claims, the third finds nothing
SELECT coupon_lock.coupon_claim(:soldout, 'owner-s'), coupon_lock.coupon_claim(:soldout, 'owner-s') \g /dev/null
SELECT coupon_lock.coupon_claim(:soldout, 'owner-t') IS NULL AS sold_out \gset
\if :sold_out
\else
\warn 'the sold-out batch handed out a third coupon'
SELECT 1/0;
\endif
-- the ending batch: three claims, one frozen, then it ends
SELECT count(coupon_lock.coupon_claim(:ending, 'owner-e' || i)) FROM generate_series(1, 3) i \g /dev/null
SELECT coupon_lock.coupon_freeze(coupon_id, owner_id, 'order-ending')
  FROM coupon_lock.coupon WHERE batch_id = :ending AND state = 'issued' ORDER BY coupon_id LIMIT 1 \g /dev/null
-- leases: held, released and granted again, about to lapse
SELECT coupon_lock.lease_acquire('upgrade-held', 'worker-1', '1 hour') \g /dev/null
SELECT coupon_lock.lease_acquire('upgrade-regranted', 'worker-1', '1 hour') \g /dev/null
SELECT coupon_lock.lease_release('upgrade-regranted', 'worker-1') \g /dev/null
SELECT coupon_lock.lease_acquire('upgrade-regranted', 'worker-2', '1 hour') \g /dev/null
SELECT coupon_lock.lease_acquire('upgrade-lapsed', 'worker-1', '1 second') \g /dev/null

SELECT pg_sleep(2.2) \g /dev/null
-- the ending batch is over: what is left expires (op expire), its freeze
-- unfrozen goes to expired (op unfreeze); one lapsed freeze is swept
SELECT coupon_lock.expire_coupons() \g /dev/null
SELECT coupon_lock.coupon_unfreeze(coupon_id, order_id)
  FROM coupon_lock.coupon WHERE batch_id = :ending AND state = 'frozen' \g /dev/null
SELECT coupon_lock.release_expired_freezes(1) \g /dev/null

-- What the fill must have produced, checked so that a quietly broken fill
-- cannot make the comparison trivially pass.
SELECT string_agg(s::text, ',' ORDER BY s) AS states
  FROM (SELECT DISTINCT state s FROM coupon_lock.coupon WHERE state <> 'available') x \gset
SELECT string_agg(op, ',' ORDER BY op) AS ops FROM (SELECT DISTINCT op FROM coupon_lock.coupon_event) x \gset
SELECT count(*) FILTER (WHERE state = 'frozen' AND frozen_until < now()) AS lapsed,
       (SELECT count(*) FROM coupon_lock.owner_quota) AS quotas,
       (SELECT count(*) FROM coupon_lock.lease) AS leases
  FROM coupon_lock.coupon \gset
\echo fill: states :states; ops :ops; lapsed freezes :lapsed; quota rows :quotas; leases :leases
SELECT :'states' = 'issued,frozen,redeemed,expired,revoked'
   AND :'ops' = 'claim,expire,freeze,issue,redeem,release,revoke,unfreeze'
   AND :lapsed = 1 AND :quotas > 8 AND :leases = 3 AS fill_ok \gset
\if :fill_ok
\else
\warn 'the fill did not produce every state, op, quota row and lease'
SELECT 1/0;
\endif
