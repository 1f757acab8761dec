
-- coupons (src/coupon.c, src/claim.c, src/quota.c, src/args.c): issue 10 items 15-19, 22

-- coupon_row_is_valid reads the enum catalog (pg_enum) to know a state: STABLE,
-- not IMMUTABLE (item 19).
ALTER FUNCTION coupon_lock.coupon_row_is_valid(coupon_lock.coupon_state, text, text, timestamptz, bigint) STABLE;

-- A freeze lasts its ttl from the moment it is made, clock_timestamp() (item 18).
COMMENT ON FUNCTION coupon_lock.coupon_freeze(bigint, text, text, bigint, interval) IS
    'issued (owned by owner_id) -> frozen for order_id until clock_timestamp() + ttl (NULL: the batch''s freeze_ttl)';
