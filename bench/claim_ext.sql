-- A flash-sale claim through coupon_lock: one coupon of the batch to a new owner.
\set r random(1, 1000000000000000)
SELECT coupon_lock.coupon_claim(:batch, 'c' || :client_id || '-' || :r);
