
-- coupons (src/coupon.c, src/claim.c, src/quota.c, src/args.c): issue 10 items 15-19, 22

-- coupon_row_is_valid reads the enum catalog (pg_enum) to know a state: STABLE,
-- not IMMUTABLE (item 19).
ALTER FUNCTION coupon_lock.coupon_row_is_valid(coupon_lock.coupon_state, text, text, timestamptz, bigint) STABLE;
