-- A first end-to-end pass through one coupon's life.
SELECT coupon_lock.create_batch('smoke', 3, 1) AS b \gset
SELECT coupon_lock.coupon_claim(:b, 'alice') AS c \gset
SELECT coupon_lock.coupon_freeze(:c, 'alice', 'order-1');
SELECT coupon_lock.coupon_redeem(:c, 'order-1');
SELECT state, owner_id, order_id, version FROM coupon_lock.coupon WHERE coupon_id = :c;
SELECT op, from_state, to_state, version FROM coupon_lock.coupon_event WHERE coupon_id = :c ORDER BY event_id;
